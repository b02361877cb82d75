#!/bin/sh
echo "hello from an image built by kiln @VERSION@ ($(uname -m))"
