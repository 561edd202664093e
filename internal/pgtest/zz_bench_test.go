package pgtest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestZZBench(t *testing.T) {
	admin := ServerURL(t)
	ctx := context.Background()
	variants := []string{"", "STRATEGY FILE_COPY", "TEMPLATE template0 ENCODING 'UTF8'", "TEMPLATE template0 ENCODING 'UTF8' STRATEGY FILE_COPY", "STRATEGY WAL_LOG TEMPLATE template0"}
	for _, par := range []int{1, 4} {
		for _, v := range variants {
			var mu sync.Mutex
			var ds []time.Duration
			var wg sync.WaitGroup
			for w := 0; w < par; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					conn, err := pgx.Connect(ctx, admin)
					if err != nil { t.Error(err); return }
					defer conn.Close(ctx)
					for i := 0; i < 8; i++ {
						name := fmt.Sprintf("zzb_%d_%d", w, i)
						s := time.Now()
						if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" "+v); err != nil { t.Error(err); return }
						d := time.Since(s)
						mu.Lock(); ds = append(ds, d); mu.Unlock()
						conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
					}
				}(w)
			}
			wg.Wait()
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			if len(ds) > 0 { t.Logf("par=%d median=%v max=%v  [%s]", par, ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), v) }
		}
	}
}
