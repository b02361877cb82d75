// Package userdb resolves user and group names against /etc/passwd and
// /etc/group inside a container root filesystem (an fsview.FS), without
// running anything in the container.
//
// Two callers need it with slightly different rules, both following Docker:
// USER for the processes of RUN (LookupUser: a uid without a passwd entry runs
// with gid 0 and HOME "/", a known user gets its supplementary groups) and
// COPY/ADD --chown (LookupOwner: a bare numeric uid is also the gid, a bare
// name takes its primary group from /etc/passwd).
package userdb
