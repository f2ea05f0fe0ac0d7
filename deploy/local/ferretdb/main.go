// Command modelreg-ferretdb runs FerretDB v1 (MongoDB wire protocol over SQLite) for the local
// stack and the integration tests.
//
// Why this wrapper exists: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds,
// but the binary panics at start-up because the generated build/version/version.txt is not part
// of the module zip (upstream issue https://github.com/FerretDB/FerretDB/issues/2982). The
// embeddable package github.com/FerretDB/FerretDB/ferretdb skips that check, so this main package
// only parses three flags and runs it. Started and stopped by deploy/local/modelreg_local/stores.py.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "", "TCP address to listen on, e.g. 127.0.0.1:27017 (required)")
	stateDir := flag.String("state-dir", "", "absolute directory for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	if err := run(*listen, *stateDir, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, stateDir, logLevel string) error {
	if listen == "" {
		return errors.New("-listen is required")
	}
	if !filepath.IsAbs(stateDir) {
		return fmt.Errorf("-state-dir must be an absolute path, got %q", stateDir)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}

	// The SQLite handler wants a "file:" URI naming an existing directory, with a trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.Clean(stateDir) + "/"}).String()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Clients connect to the write-lock proxy (see writelock.go); FerretDB itself listens on a
	// loopback port of its own choosing behind it.
	proxy, err := newWriteLockProxy(listen, logger)
	if err != nil {
		return err
	}
	defer proxy.close()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	go newIDIndexKeeper(filepath.Clean(stateDir), logger).run(ctx, 200*time.Millisecond)

	// ferretdb.New has already bound its socket; MongoDBURI reports the port it got.
	backend, err := url.Parse(f.MongoDBURI())
	if err != nil {
		return err
	}
	proxy.backend = backend.Host
	go func() {
		if err := proxy.serve(); err != nil {
			done <- err
		}
	}()
	fmt.Printf("READY mongodb://%s/\n", proxy.addr())

	return <-done
}
