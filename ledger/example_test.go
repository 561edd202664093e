package ledger_test

import (
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// Two changes to one patient, as satellite 3 records them: a create and a
// write, sealed into the satellite's hash chain, encoded for the wire and
// decoded on the other side.
func Example() {
	clock := clocks.NewClock(clocks.NewManual(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)), 0)
	key := ledger.JoinKey("HOSP1", "PAT 0042")

	dob, err := ledger.Date(time.Date(1980, 2, 29, 0, 0, 0, 0, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	create := &ledger.Event{
		ID: uuid.Must(uuid.NewV7()), Origin: 3, OriginSeq: 1, HLC: clock.Now(),
		Model: "gnuhealth.patient", Key: key, Op: ledger.OpCreate, User: "admin", Tx: 1,
		Fields: map[string]ledger.Value{"dob": dob, "name": ledger.String("Ana Souza")},
	}
	if err := create.Seal(ledger.Hash{}); err != nil { // first of its origin: zero prev
		log.Fatal(err)
	}

	weight, err := ledger.Decimal("71.50")
	if err != nil {
		log.Fatal(err)
	}
	write := &ledger.Event{
		ID: uuid.Must(uuid.NewV7()), Origin: 3, OriginSeq: 2, HLC: clock.Now(),
		Model: "gnuhealth.patient", Key: key, Op: ledger.OpWrite, User: "admin", Tx: 2,
		Fields: map[string]ledger.Value{"weight": weight},
		Base:   map[string]clocks.Timestamp{"weight": 0}, // no earlier weight
	}
	if err := write.Seal(create.Hash); err != nil { // chained to the create
		log.Fatal(err)
	}

	var prev ledger.Hash
	for _, e := range []*ledger.Event{create, write} {
		data, err := ledger.Marshal(e)
		if err != nil {
			log.Fatal(err)
		}
		got, err := ledger.Unmarshal(data)
		if err != nil {
			log.Fatal(err)
		}
		w, _ := got.Fields["weight"].AsDecimal()
		fmt.Printf("%s %s #%d format=%d same-hash=%t chained=%t weight=%q\n",
			got.Stream(), got.Op, got.OriginSeq, data[0], got.Hash == e.Hash, got.PrevHash == prev, w)
		prev = got.Hash
	}
	// Output:
	// gnuhealth.patient-HOSP1/PAT%200042 create #1 format=1 same-hash=true chained=true weight=""
	// gnuhealth.patient-HOSP1/PAT%200042 write #2 format=1 same-hash=true chained=true weight="71.5"
}

func ExampleParseStream() {
	s, err := ledger.ParseStream("gnuhealth.patient-HOSP1/PAT%200042")
	if err != nil {
		log.Fatal(err)
	}
	parts, err := ledger.SplitKey(s.Key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %q\n", s.Model, parts)
	_, err = ledger.ParseStream("gnuhealth.patient-HOSP1%2FPAT")
	fmt.Println(err != nil)
	// Output:
	// gnuhealth.patient ["HOSP1" "PAT 0042"]
	// true
}

func ExampleDecimal() {
	for _, s := range []string{"007.50", "-0.00", ".5", "1e5"} {
		v, err := ledger.Decimal(s)
		if err != nil {
			fmt.Println(s, "refused")
			continue
		}
		fmt.Println(s, "→", v)
	}
	// Output:
	// 007.50 → 7.5
	// -0.00 → 0
	// .5 → 0.5
	// 1e5 refused
}
