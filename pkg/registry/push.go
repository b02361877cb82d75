package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push pushes img to every destination, in order, and returns the pushed
// digest reference of each. A destination is a tag; one that names none
// means ":latest". For each, blobs the registry already has are skipped
// (or mounted from the repository img was pulled from), the others are
// uploaded concurrently, and the manifest goes last, so a tag never points
// at a partial push.
func (c *Client) Push(ctx context.Context, img v1.Image, destinations []string) ([]name.Digest, error) {
	tags := make([]name.Tag, len(destinations))
	for i, d := range destinations {
		ref, err := c.parseReference(d, push)
		if err != nil {
			return nil, fmt.Errorf("pushing to %q: %w", d, err)
		}
		tag, ok := ref.(name.Tag)
		if !ok {
			return nil, fmt.Errorf("pushing to %q: a destination is a tag, not a digest", d)
		}
		tags[i] = tag
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing the image digest: %w", err)
	}
	pushed := make([]name.Digest, len(tags))
	for i, tag := range tags {
		final, err := c.push(ctx, img, tag)
		if err != nil {
			return nil, fmt.Errorf("pushing to %q: %w", tag.Name(), err)
		}
		pushed[i] = tag.Context().Digest(digest.String())
		if final.Total == 0 { // remote.Write found the tag already there
			c.log.Infof("pushed %q: the registry had it already", pushed[i].Name())
		} else {
			c.log.Infof("pushed %q: %s of %s", pushed[i].Name(), byteSize(final.Complete), byteSize(final.Total))
		}
	}
	return pushed, nil
}

// push writes img to tag and returns its last progress update.
func (c *Client) push(ctx context.Context, img v1.Image, tag name.Tag) (v1.Update, error) {
	// remote.Write closes updates when it returns, and blocks while the
	// channel is full: the updates are read concurrently.
	updates := make(chan v1.Update, 64)
	final := make(chan v1.Update)
	progress := newProgressLog(c.log, fmt.Sprintf("pushing %q", tag.Name()))
	go func() { final <- progress.follow(updates) }()
	err := remote.Write(tag, img, append(c.remoteOptions(ctx, tag.Registry, push), remote.WithProgress(updates))...)
	return <-final, err
}
