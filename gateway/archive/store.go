package archive

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSchemaTooNew is returned by Open for a database a newer sterigate
// migrated.
var ErrSchemaTooNew = errors.New("the archive database's schema is newer than this sterigate understands")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the archive's PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// keepTelemetry stores telemetry batches' samples, not only their
	// place in the chain.
	keepTelemetry bool
	keys          *keyRing
	// partitions are the telemetry months whose partition exists.
	partitionsMu sync.Mutex
	partitions   map[string]bool
}

// StoreOptions tune a Store.
type StoreOptions struct {
	// Telemetry keeps telemetry batches (archive.telemetry).
	Telemetry bool
	// MaxConns bounds the connection pool (default 4).
	MaxConns int32
	// ApplicationName names the connections in pg_stat_activity (the
	// instance, for the database's administrators).
	ApplicationName string
}

// Open connects to the database at url and brings its schema up to date.
func Open(ctx context.Context, url string, opts StoreOptions) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL; say only what is wrong.
		return nil, errors.New("postgres: the connection URL cannot be parsed")
	}
	if opts.ApplicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = opts.ApplicationName
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, keepTelemetry: opts.Telemetry, keys: newKeyRing(), partitions: map[string]bool{}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool is the connection pool, for queries.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type migrationStep struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded migrations/NNN_name.sql files in order: the
// i-th brings the schema from version i-1 to i. Append new files; never
// change one that has shipped.
func migrations() ([]migrationStep, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var steps []migrationStep
	for i, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, "migrations/"), "%03d_", &n); err != nil || n != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %03d", name, i+1)
		}
		steps = append(steps, migrationStep{version: n, name: name, sql: string(b)})
	}
	return steps, nil
}

// migrationLock is the advisory lock key that keeps two instances starting
// at once from migrating together ("sgarchiv" in ASCII).
const migrationLock = 0x7367617263686976

// migrate applies the migrations the database lacks, each in its own
// transaction with the schema_version update, so a crash in between leaves
// a schema the next start carries on from.
func (s *Store) migrate(ctx context.Context) error {
	steps, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS archive_schema_version (version integer NOT NULL)`); err != nil {
		var pe *pgconn.PgError
		// Two instances creating it at once: one loses the race, harmlessly.
		if !errors.As(err, &pe) || pe.Code != "23505" {
			return fmt.Errorf("postgres: create archive_schema_version: %w", err)
		}
	}
	for _, step := range steps {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
				return err
			}
			var version int
			err := tx.QueryRow(ctx, `SELECT version FROM archive_schema_version`).Scan(&version)
			if errors.Is(err, pgx.ErrNoRows) {
				version = 0
				if _, err := tx.Exec(ctx, `INSERT INTO archive_schema_version (version) VALUES (0)`); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if version > len(steps) {
				return fmt.Errorf("%w: version %d, this sterigate knows %d: upgrade sterigate", ErrSchemaTooNew, version, len(steps))
			}
			if version >= step.version {
				return nil
			}
			if _, err := tx.Exec(ctx, step.sql); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE archive_schema_version SET version = $1`, step.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migrate to schema version %d (%s): %w", step.version, step.name, err)
		}
	}
	return nil
}

// ensurePartition creates the telemetry partition of t's month (UTC).
func (s *Store) ensurePartition(ctx context.Context, tx pgx.Tx, t time.Time) error {
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	name := fmt.Sprintf("telemetry_y%04dm%02d", start.Year(), start.Month())
	s.partitionsMu.Lock()
	known := s.partitions[name]
	s.partitionsMu.Unlock()
	if known {
		return nil
	}
	end := start.AddDate(0, 1, 0)
	// In a savepoint: another instance creating it at the same moment
	// makes this one fail, which must not end the transaction.
	_, err := tx.Exec(ctx, `SAVEPOINT partition`)
	if err == nil {
		_, err = tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF telemetry FOR VALUES FROM ('%s') TO ('%s')`,
			name, start.Format(time.RFC3339), end.Format(time.RFC3339)))
		if err != nil {
			if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT partition`); rerr != nil {
				return rerr
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42P07" && pe.Code != "23505") {
				return fmt.Errorf("create telemetry partition %s: %w", name, err)
			}
		} else if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT partition`); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	s.partitionsMu.Lock()
	s.partitions[name] = true
	s.partitionsMu.Unlock()
	return nil
}
