package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// discardLogger drops everything; it is the default wherever a part is meant
// to be quiet unless asked.
var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// NewKgoLogger adapts an *slog.Logger to franz-go's kgo.Logger. franz-go
// logs every group step at info, which is noise next to genpipe's own logs
// of what matters (the engine logs each rebalance), so franz-go's info and
// debug go to slog's debug level; its warnings and errors keep theirs.
func NewKgoLogger(l *slog.Logger) kgo.Logger { return kgoLogger{l} }

type kgoLogger struct{ l *slog.Logger }

// Level tells franz-go the most verbose level worth building messages for.
func (k kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	default:
		return kgo.LogLevelNone
	}
}

// Log passes franz-go's alternating key/value pairs straight to slog,
// which takes the same shape.
func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	k.l.Log(context.Background(), lvl, "kgo: "+msg, keyvals...)
}

// kfakeLogger adapts an *slog.Logger to kfake's printf-style Logger.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	lvl := slogLevel(int8(level))
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	k.l.Log(context.Background(), lvl, "kfake: "+fmt.Sprintf(format, args...))
}

// slogLevel maps the level numbering kgo and kfake share (1 error, 2 warn,
// 3 info, 4 debug) to slog.
func slogLevel(level int8) slog.Level {
	switch level {
	case 1:
		return slog.LevelError
	case 2:
		return slog.LevelWarn
	case 3:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
