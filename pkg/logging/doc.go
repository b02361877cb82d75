// Package logging configures kiln's logrus logger from the command line:
// level (--verbosity), format (--log-format text|color|json) and timestamps
// (--log-timestamp).
package logging
