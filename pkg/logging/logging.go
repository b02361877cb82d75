package logging

import (
	"fmt"
	"io"
	"strings"

	"github.com/sirupsen/logrus"
)

// Formats accepted by --log-format.
const (
	FormatText  = "text"
	FormatColor = "color"
	FormatJSON  = "json"
)

// Configure sets up logger to write to w with the given level, format and
// timestamps. Unknown values are errors that list the accepted ones.
func Configure(logger *logrus.Logger, w io.Writer, level, format string, timestamps bool) error {
	lvl, err := logrus.ParseLevel(strings.ToLower(level))
	if err != nil {
		return fmt.Errorf("invalid verbosity %q: use panic, fatal, error, warn, info, debug or trace", level)
	}
	var f logrus.Formatter
	switch strings.ToLower(format) {
	case FormatText:
		f = &logrus.TextFormatter{DisableColors: true, FullTimestamp: timestamps, DisableTimestamp: !timestamps}
	case FormatColor:
		f = &logrus.TextFormatter{ForceColors: true, FullTimestamp: timestamps, DisableTimestamp: !timestamps}
	case FormatJSON:
		f = &logrus.JSONFormatter{DisableTimestamp: !timestamps}
	default:
		return fmt.Errorf("invalid log format %q: use text, color or json", format)
	}
	logger.SetOutput(w)
	logger.SetLevel(lvl)
	logger.SetFormatter(f)
	return nil
}
