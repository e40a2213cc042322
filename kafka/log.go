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

// kgoLogger adapts an *slog.Logger to franz-go's kgo.Logger. franz-go asks
// for a level up front to avoid building messages nobody reads, so Level
// reports the most verbose level the slog handler has enabled.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case k.l.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	default:
		return kgo.LogLevelNone
	}
}

// Log passes franz-go's alternating key/value pairs straight to slog, which
// takes the same shape.
func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	k.l.Log(context.Background(), slogLevel(int8(level)), "kgo: "+msg, keyvals...)
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
