// Command modelreg-ferretdb runs FerretDB v1 (MongoDB wire protocol over SQLite) for the local
// stack and the integration tests.
//
// Why this wrapper exists: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds,
// but the binary panics at start-up because the generated build/version/version.txt is not part
// of the module zip (upstream issue https://github.com/FerretDB/FerretDB/issues/2982). The
// embeddable package github.com/FerretDB/FerretDB/ferretdb skips that check, so this main package
// only parses a few flags and runs it. Started and stopped by
// deploy/local/modelreg_local/stores/ferretdb.py.
//
// Who can reach what (neither FerretDB nor the proxy authenticates anyone):
//   - FerretDB itself listens only on the Unix socket -backend-socket, in a directory of mode 0700,
//     so no other user can reach it and bypass the write lock (see writelock.go);
//   - clients connect to the write-lock proxy on -listen: a Unix socket of mode 0600 in a
//     directory of mode 0700 (only this user), or a loopback TCP port (every local user).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "", "where clients connect: an absolute path for a Unix socket, "+
		"or a loopback host:port for TCP (required)")
	backendSocket := flag.String("backend-socket", "", "absolute path of FerretDB's own Unix socket, "+
		"reached only through the write-lock proxy (required)")
	stateDir := flag.String("state-dir", "", "absolute directory for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	if err := run(*listen, *backendSocket, *stateDir, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, backendSocket, stateDir, logLevel string) error {
	if listen == "" {
		return errors.New("-listen is required")
	}
	if backendSocket == "" {
		return errors.New("-backend-socket is required")
	}
	if !filepath.IsAbs(stateDir) {
		return fmt.Errorf("-state-dir must be an absolute path, got %q", stateDir)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	// Everything this process creates (SQLite files, sockets) is for this user alone.
	syscall.Umask(0o077)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}

	// The SQLite handler wants a "file:" URI naming an existing directory, with a trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.Clean(stateDir) + "/"}).String()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	clients, clientURI, err := listenForClients(listen)
	if err != nil {
		return err
	}
	proxy := newWriteLockProxy(clients, backendSocket, logger)
	defer proxy.close()

	// FerretDB binds its socket in ferretdb.New; prepare the directory and clear a stale socket first.
	if err := prepareSocketPath(backendSocket); err != nil {
		return fmt.Errorf("-backend-socket: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: backendSocket},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(backendSocket, 0o600); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	go newIDIndexKeeper(filepath.Clean(stateDir), logger).run(ctx, 200*time.Millisecond)
	go func() {
		if err := proxy.serve(); err != nil {
			done <- err
		}
	}()
	fmt.Printf("READY %s\n", clientURI)

	return <-done
}

// listenForClients binds the proxy's address: a Unix socket of mode 0600 when listen is an absolute
// path, else a TCP address, which must be a loopback one (the proxy asks for no credentials).
func listenForClients(listen string) (net.Listener, string, error) {
	if filepath.IsAbs(listen) {
		if err := prepareSocketPath(listen); err != nil {
			return nil, "", fmt.Errorf("-listen: %w", err)
		}
		l, err := net.Listen("unix", listen)
		if err != nil {
			return nil, "", err
		}
		if err := os.Chmod(listen, 0o600); err != nil {
			l.Close()
			return nil, "", err
		}
		// pymongo and mongosh read a host ending in ".sock" as a percent-encoded socket path.
		return l, "mongodb://" + url.PathEscape(listen) + "/", nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("-listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, "", fmt.Errorf("-listen: %q is not a loopback address; this proxy has no authentication", listen)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", err
	}
	return l, "mongodb://" + l.Addr().String() + "/", nil
}

// maxSocketPath is the longest Unix socket path Linux accepts: sun_path holds 108 bytes, NUL included.
const maxSocketPath = 107

// prepareSocketPath makes the socket's directory private (mode 0700, ours, not a symlink), so no
// other user can connect whatever the socket's own mode, and removes a socket left behind by a
// killed run. It refuses to remove anything that is not a socket, or a socket someone still serves.
func prepareSocketPath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	if len(path) > maxSocketPath {
		return fmt.Errorf("socket path %q is %d bytes, longer than the %d a Unix socket allows", path, len(path), maxSocketPath)
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return err
	}
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("another server is listening on %s", path)
	}
	return os.Remove(path)
}

func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user", dir, st.Uid)
	}
	if info.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
