// Package testimage builds small base images for tests, without a network:
// trees of files packed into layers, and a busybox image from the static
// busybox of Debian's busybox-static package.
package testimage
