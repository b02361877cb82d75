package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/pkg/progress"
)

// Push pushes img to every destination and returns the pushed digest
// reference of each. A destination is a tag; one that names none means
// ":latest". It goes in two rounds, so that a tag never points at a partial
// push and a failure tags nothing: first every destination receives the
// blobs (those it has are skipped, or mounted from the repository img was
// pulled from; the others are uploaded concurrently) and the manifest by
// digest; then each tag is set. Transient failures are retried (see
// WithPushRetries); an immutable tag is an error unless
// WithIgnoreImmutableTagErrors.
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
	// Blobs uploaded ahead (Preupload) are found there, not sent again.
	c.preuploads.Wait()
	pushed := make([]name.Digest, len(tags))
	sent := make([]v1.Update, len(tags))
	for i, tag := range tags {
		pushed[i] = tag.Context().Digest(digest.String())
		if sent[i], err = c.pushByDigest(ctx, img, pushed[i]); err != nil {
			return nil, c.explainRef("pushing", tag, push, err)
		}
	}
	for i, tag := range tags {
		if err := c.setTag(ctx, img, tag, digest, sent[i]); err != nil {
			return nil, err
		}
		c.progress.Event(progress.Event{Kind: progress.Pushed, Time: time.Now(), Name: tag.Name(), Digest: digest.String()})
	}
	return pushed, nil
}

// pushByDigest writes t (an image or an index) with what it references to
// ref and returns the last progress update.
func (c *Client) pushByDigest(ctx context.Context, t remote.Taggable, ref name.Digest) (v1.Update, error) {
	// remote.Push closes updates when it returns, and blocks while the
	// channel is full: the updates are read concurrently.
	updates := make(chan v1.Update, 64)
	final := make(chan v1.Update)
	progress := c.newTransfer("push "+ref.String(), fmt.Sprintf("pushing %q", ref.Context().Name()), true)
	go func() { final <- progress.follow(updates) }()
	err := remote.Push(ref, t, append(c.remoteOptions(ctx, ref.Context().Registry, push), remote.WithProgress(updates))...)
	return <-final, err
}

// setTag points tag at t, whose manifest and content are in its
// repository; sent is what pushing them transferred.
func (c *Client) setTag(ctx context.Context, t remote.Taggable, tag name.Tag, digest v1.Hash, sent v1.Update) error {
	opts := c.remoteOptions(ctx, tag.Registry, push)
	if sent.Total == 0 { // the manifest was there: so may the tag be
		if desc, err := remote.Head(tag, opts...); err == nil && desc.Digest == digest {
			c.log.Infof("Pushed %q: the registry had it already", tag.Name())
			return nil
		}
	}
	if err := remote.Tag(tag, t, opts...); err != nil {
		if c.ignoreImmutable && isImmutableTagError(err) {
			c.log.Warnf("Tag %q is immutable in the registry and was left alone; the image is pushed as %q (--push-ignore-immutable-tag-errors)",
				tag.Name(), tag.Context().Digest(digest.String()).Name())
			return nil
		}
		return c.explainRef("pushing", tag, push, err)
	}
	if sent.Total == 0 {
		c.log.Infof("Pushed %q: the registry had its content already", tag.Name())
	} else {
		c.log.Infof("Pushed %q: %s of %s", tag.Name(), byteSize(sent.Complete), byteSize(sent.Total))
	}
	return nil
}
