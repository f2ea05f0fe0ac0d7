package main

// FerretDB v1 applies update, findAndModify and delete as read-then-write without a transaction
// (upstream issue #3040): two concurrent updates of one document both read the old state, and
// the filter of a compare-and-set (`{_id, etag: old}`) is not checked again at write time, so
// updates are lost. MongoDB applies each single-document write atomically, and the registry's
// concurrency rules (etag compare-and-set, one winner per alias move) rely on that.
//
// writeLockProxy restores that guarantee for the local stack and the tests: it listens where
// clients connect, forwards every message to FerretDB's own listener (a Unix socket in a private
// directory, so nobody else can go around the lock), and runs every command that may write under
// one process-wide mutex. Reads are forwarded without the lock. SQLite admits a single writer at a
// time anyway, so little throughput is lost.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

const (
	opMsg            = 2013
	opQuery          = 2004
	headerSize       = 16
	maxMessageBytes  = 48 * 1024 * 1024 // MongoDB's maxMessageSizeBytes
	flagMoreToCome   = 1 << 1
	flagChecksumSize = 1 << 0
)

// readOnlyCommands never change data, so they bypass the write lock.
var readOnlyCommands = map[string]bool{
	"find": true, "getMore": true, "count": true, "distinct": true, "aggregate": true, // FerretDB v1 has no $out or $merge
	"listCollections": true, "listIndexes": true, "listDatabases": true, "ping": true,
	"hello": true, "isMaster": true, "ismaster": true, "buildInfo": true, "buildinfo": true,
	"getParameter": true, "getLog": true, "serverStatus": true, "dbStats": true,
	"collStats": true, "connectionStatus": true, "endSessions": true, "killCursors": true,
	"whatsmyuri": true, "getCmdLineOpts": true, "hostInfo": true, "explain": true,
	"saslStart": true, "saslContinue": true, "logout": true, "dataSize": true,
}

type writeLockProxy struct {
	listener net.Listener
	backend  string // FerretDB's Unix socket
	logger   *slog.Logger
	writes   sync.Mutex
}

// newWriteLockProxy serves clients accepted on listener; FerretDB must listen on backend by the
// time serve is called.
func newWriteLockProxy(listener net.Listener, backend string, logger *slog.Logger) *writeLockProxy {
	return &writeLockProxy{listener: listener, backend: backend, logger: logger}
}

func (p *writeLockProxy) serve() error {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go p.handle(client)
	}
}

func (p *writeLockProxy) close() error { return p.listener.Close() }

// handle relays one client connection: one request, then its reply (or replies, for exhaust
// cursors), in order, as the wire protocol requires of a single connection.
func (p *writeLockProxy) handle(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("unix", p.backend)
	if err != nil {
		p.logger.Error("cannot reach FerretDB", "error", err)
		return
	}
	defer server.Close()
	for {
		request, err := readMessage(client)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.logger.Debug("client read failed", "error", err)
			}
			return
		}
		if err := p.exchange(request, client, server); err != nil {
			p.logger.Debug("relay failed", "error", err)
			return
		}
	}
}

func (p *writeLockProxy) exchange(request []byte, client, server net.Conn) error {
	if mayWrite(request) {
		p.writes.Lock()
		defer p.writes.Unlock()
	}
	if _, err := server.Write(request); err != nil {
		return err
	}
	if moreToCome(request) { // fire-and-forget request: no reply follows
		return nil
	}
	for {
		reply, err := readMessage(server)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) {
			return nil
		}
	}
}

func readMessage(r io.Reader) ([]byte, error) {
	var header [headerSize]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	length := int(int32(binary.LittleEndian.Uint32(header[:4])))
	if length < headerSize || length > maxMessageBytes {
		return nil, fmt.Errorf("invalid message length %d", length)
	}
	message := make([]byte, length)
	copy(message, header[:])
	if _, err := io.ReadFull(r, message[headerSize:]); err != nil {
		return nil, err
	}
	return message, nil
}

func opCode(message []byte) int32 { return int32(binary.LittleEndian.Uint32(message[12:16])) }

func moreToCome(message []byte) bool {
	return opCode(message) == opMsg && len(message) >= headerSize+4 &&
		binary.LittleEndian.Uint32(message[headerSize:headerSize+4])&flagMoreToCome != 0
}

// mayWrite reports whether a request could change data: any OP_MSG whose command is not known
// to be read-only (unknown shapes count as writes, erring on the side of the lock).
func mayWrite(message []byte) bool {
	switch opCode(message) {
	case opQuery:
		return false // legacy handshake only
	case opMsg:
		name, ok := commandName(message)
		return !ok || !readOnlyCommands[name]
	default:
		return true
	}
}

// commandName returns the first key of the OP_MSG body (section kind 0): the command's name.
func commandName(message []byte) (string, bool) {
	flags := binary.LittleEndian.Uint32(message[headerSize : headerSize+4])
	end := len(message)
	if flags&flagChecksumSize != 0 {
		end -= 4
	}
	pos := headerSize + 4
	for pos < end {
		kind := message[pos]
		pos++
		if pos+4 > end {
			return "", false
		}
		size := int(int32(binary.LittleEndian.Uint32(message[pos : pos+4])))
		if size < 5 || pos+size > end {
			return "", false
		}
		if kind == 0 {
			// BSON: int32 length, then elements: type byte, cstring name, value.
			doc := message[pos : pos+size]
			if len(doc) < 6 || doc[4] == 0 {
				return "", false
			}
			for i := 5; i < len(doc); i++ {
				if doc[i] == 0 {
					return string(doc[5:i]), true
				}
			}
			return "", false
		}
		pos += size // kind 1: a document sequence, whose size field covers the whole section
	}
	return "", false
}
