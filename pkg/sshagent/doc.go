// Package sshagent gives RUN --mount=type=ssh an SSH agent: the agent of the
// machine kiln runs on (forwarded from its socket, $SSH_AUTH_SOCK), or one
// kiln serves itself from private key files it holds in memory. Each RUN
// gets a socket of its own, owned as the mount asks, that exists for the
// time of the RUN only. Keys are never written anywhere.
package sshagent
