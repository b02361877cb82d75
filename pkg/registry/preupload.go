package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Preupload starts uploading l to the repository of each destination in
// the background, while the build goes on: by the time the image is
// pushed, its blobs are there (Push waits for uploads in flight, then finds
// them). A blob the repository has is not sent again, one it can mount
// from the repository it was pulled from is mounted. A failure here costs
// nothing but a debug line: Push does the work again, and reports.
func (c *Client) Preupload(ctx context.Context, destinations []string, l v1.Layer) {
	seen := map[string]bool{}
	for _, d := range destinations {
		ref, err := c.parseReference(d, push)
		if err != nil || seen[ref.Context().String()] {
			continue
		}
		seen[ref.Context().String()] = true
		repo := ref.Context()
		c.preuploads.Add(1)
		go func() {
			defer c.preuploads.Done()
			if err := c.uploadLayer(ctx, repo, l); err != nil {
				digest, _ := l.Digest()
				c.log.Debugf("Uploading layer %s to %q ahead of the push: %v (the push sends it)", digest, repo.Name(), err)
			}
		}()
	}
}

func (c *Client) uploadLayer(ctx context.Context, repo name.Repository, l v1.Layer) error {
	digest, err := l.Digest()
	if err != nil {
		return err
	}
	updates := make(chan v1.Update, 64)
	progress := c.newTransfer(fmt.Sprintf("upload %s %s", repo, digest), fmt.Sprintf("pushing layer %s to %q", digest, repo.Name()), true)
	done := make(chan struct{})
	go func() { progress.follow(updates); close(done) }()
	err = remote.WriteLayer(repo, l, append(c.remoteOptions(ctx, repo.Registry, push), remote.WithProgress(updates))...)
	<-done
	return err
}
