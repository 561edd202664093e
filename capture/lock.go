package capture

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/ghsync/ghsync/models"
)

// lock makes this the only capturer of the database until unlock: two
// draining at once would stamp one change twice. PostgreSQL: a
// session-level advisory lock on a connection kept for the purpose.
// SQLite: an exclusive flock on a file beside the database.
func (d *db) lock(ctx context.Context) (unlock func(), err error) {
	if d.dialect == models.Postgres {
		conn, err := d.Conn(ctx)
		if err != nil {
			return nil, err
		}
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtext('ghsync.capture'))`).Scan(&got); err != nil {
			conn.Close()
			return nil, err
		}
		if !got {
			conn.Close()
			return nil, errBusy
		}
		return func() {
			conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(hashtext('ghsync.capture'))`)
			conn.Close()
		}, nil
	}
	f, err := os.OpenFile(d.path+".capture-lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errBusy
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
