package main

// FerretDB v1.24's SQLite backend pushes a `{_id: <string>}` filter down as
// `WHERE _ferretdb_sjson->'$._id' = ?`, but the unique `_id` index it creates is on the expression
// `_ferretdb_sjson->"_id"`. SQLite only uses an index whose expression matches the query
// textually, so every lookup by `_id` (and every update, which rewrites a document by `_id`)
// scans the whole table: about 90 ms per lookup at 10,000 documents, 0.9 ms with a matching index.
// idIndexKeeper adds that matching index to every collection's table as tables appear. It is
// invisible to FerretDB (not in its metadata): listIndexes does not show it and dropping a
// collection drops it with the table.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver FerretDB itself uses
)

const idIndexSuffix = "__modelreg_id_lookup"

type idIndexKeeper struct {
	stateDir string
	logger   *slog.Logger
	done     map[string]bool // "<database file>/<table>" already indexed
}

func newIDIndexKeeper(stateDir string, logger *slog.Logger) *idIndexKeeper {
	return &idIndexKeeper{stateDir: stateDir, logger: logger, done: map[string]bool{}}
}

// run polls every interval until ctx ends; new collections get their index within one interval.
func (k *idIndexKeeper) run(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		k.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (k *idIndexKeeper) sweep(ctx context.Context) {
	files, err := filepath.Glob(filepath.Join(k.stateDir, "*.sqlite"))
	if err != nil {
		return
	}
	for _, file := range files {
		if err := k.indexDatabase(ctx, file); err != nil && ctx.Err() == nil {
			k.logger.Debug("id index sweep", "file", file, "error", err)
		}
	}
}

func (k *idIndexKeeper) indexDatabase(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return err
	}
	dsn := (&url.URL{Scheme: "file", Path: file, RawQuery: "_pragma=busy_timeout(5000)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return err // not a FerretDB database yet
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()

	for _, table := range tables {
		key := file + "/" + table
		if k.done[key] {
			continue
		}
		if strings.ContainsAny(table, `"`) {
			continue // FerretDB never makes such names; refuse rather than quote badly
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s%s" ON "%s" (_ferretdb_sjson->'$._id')`, table, idIndexSuffix, table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
		k.done[key] = true
	}
	return nil
}
