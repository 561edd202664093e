/*
Package merge decides what a synchronised record's fields hold, and which
writes were lost, from the events the ledger holds about it. It is pure: no
I/O, no clock, no global state. The projector feeds it a record's events and
writes the outcome to the Tryton tables and the conflict queue.

# The state

A State is one record's merge state: the smallest create stamp seen
(Created), every delete stamp seen (Deleted, the smallest: the tombstone,
and Redeleted), and for
every field every write any create or write event made to it (Fields),
sorted by Stamp and unique by it. A Stamp is (HLC, origin, event id), the
total order of ledger.Event.Compare. A Write is a stamp, the Base the writer
named (the HLC of the value it replaced; 0 for creates and first writes) and
the value.

State keeps every write, not only the winner, because only then are the
current values and the conflict set functions of the set of applied events.
With only the winner kept, three concurrent writes report different
conflicts depending on the order they arrive in. Nothing in a State depends
on the Policy either: Value, Values and Conflicts apply a policy on demand,
so a policy change needs no replay.

# Eligibility

A write takes part in the merge unless

  - its stamp is after the tombstone (conflict reason RecordDeleted, against
    a Winner holding the delete's stamp and a null value), or
  - the policy is OriginOwned, a create is known, and the writer is not the
    creating origin (NotOwner, against the field's winning eligible write,
    or a zero Write if none). Before any create is known, every origin's
    writes are eligible.

Each losing write of a field is reported once, with the first of these
reasons that applies, else the rule's own.

# Rules

LastWriterWins (the default): the greatest stamp wins. A write L is a
conflict loser (ConcurrentWrite) when the first later eligible write that
either saw it (its Base is at or after L's HLC) or set another value did
not see it: L lost to that write W, which is reported. A write that saw L
replaced it knowingly: L is no conflict, and a write that missed both
conflicts with L's replacement, the head of L's line, instead. Later
writes that missed L but set its value are passed over.

FirstWins (write-once): the smallest stamp wins; every other write with
another value is a conflict (WriteOnce).

Max, Min: the greatest (smallest) value by ledger.Value.Compare wins, ties
to the greatest stamp. No conflicts: every value is an input to the result.

Union (Many2Many; values are ledger RefSets, any other value counts as the
empty set): an add-wins observed-remove set in which each write is a tag.
For a write W, its base B is the eligible write of the field with the
greatest stamp whose HLC equals W.Base (none: the empty set). W adds, tagged
with its HLC, the refs in W but not in B, and removes the refs in B but not
in W; a removal of r cancels every add of r whose tag is at most W.Base. A
ref is present when some add of it is not cancelled, so a concurrent add
beats a remove. No conflicts. Value returns the stamp and base of the
greatest eligible write with the merged set as its value.

CentralWins: writes from origin 0 (central) rank above all others, last
writer wins within each class. Central writes among themselves are judged
as under LastWriterWins. If no central write exists, neither are the
others. If one does, it wins, and a satellite write is a conflict
(CentralOnly, against the winning central write) when its value differs
from the winning one and some central write overrode it without having
seen it (that write's Base is before the satellite write's HLC). A
satellite value that central later replaced knowingly had its turn and is
no conflict, as under LastWriterWins; satellite writes are not judged
against each other once central has a value.

# Deletes and creates

The tombstone is the smallest delete stamp (Deleted; later ones are in
Redeleted); Live is false from then on, and no later create or write that
had not seen the delete revives the record (every write after the
tombstone is a RecordDeleted conflict, one per field it set; writes before
it are not). A second delete is no conflict. A create arriving after writes
to the same key merges with them like any write; Created is the smallest
create stamp. Two creates of one key from different origins (a duplicate
registration) merge field by field like any writes: creates have Base 0, so
differing values are ConcurrentWrite conflicts, and with OriginOwned the
smaller create's origin owns the record.

A create that carries Revives (the HLC of the latest delete its writer
saw) and comes after a life ended, having seen the delete that ended it,
begins a new life: the record is live again (Revival), its values and
owner come from the new life, and the writes of earlier lives are history,
neither values nor conflicts of it. Each life is judged on its own writes
for conflicts; a write stamped after the delete that ended its life is a
RecordDeleted conflict against that delete. Revived states are not
compacted.

A change belongs to the life its writer saw. Writes and deletes carry Saw
(the HLC of the latest delete their writer knew of; absent: none), creates
Revives; a change stamped in a life whose beginning its writer had not
seen (it saw less than the delete that life began after) is of the latest
life it had seen, which has ended: a write is a RecordDeleted conflict, a
delete ends nothing. A delete stamped before a reviving create cannot have
seen it, so it never keeps the create from beginning its life.

The delete half of a key change carries RenamedTo, the key the record
moved to. Deletes of one life that disagree with the one that ended it on
where the record went (two concurrent moves to different keys, a move and
a plain delete) are ConcurrentMove conflicts: the record lives on under
each new key, and an auditor must see that.

# Laws

For any set of events, whatever the order of Apply calls and however many
duplicates, the State encodes (MarshalBinary) to the same bytes and gives
the same Values and Conflicts under every policy. Merge, the union of two
states, is commutative, associative and idempotent, and merging the states
of parts of a set of events equals applying the whole set. The encoding is
canonical, and UnmarshalState accepts exactly the canonical encodings.
laws_test.go checks all of this over thousands of simulated histories.

# Compaction

A State grows with every write to the record. State.Compact drops the
writes that no later event can make matter again, given a frontier: an
HLC at or before which every write has reached every instance, no write
is still to arrive, and every later write was made knowing them all. The
network computes the frontier (ARCHITECTURE.md, "Stability and
compaction"); Compact keeps values exactly, keeps every conflict of the
writes it keeps, and drops a write only once its own conflict is final,
so a caller that keeps the conflicts Conflicts reported before
compacting stores the same conflicts as one that never compacted.
compact_test.go checks that over thousands of simulated histories.

Compacted states are no longer a function of the events alone but of the
events and the frontier: two replicas that compacted at different
frontiers have different encodings and the same values.

# HAZARD: growth

Compaction keeps every write of a Union or CentralWins field and of an
OriginOwned model (their outcomes can still change with later writes),
and keeps everything after the frontier: a satellite that stays offline
holds the frontier back for the whole network, and states grow until it
returns or is retired.

# HAZARD: clocks beyond the maximum offset

Every rule orders by HLC. A write stamped far in the future (a node whose
clock ran ahead with clocks.Clock's MaxOffset check disabled) wins
LastWriterWins, and CentralWins within its class, against every honest
write until real time
passes it, and looks concurrent with everything (no honest Base reaches
it), so it is the reported winner of every conflict it takes part in. The clocks package refuses such
remotes by default; merge trusts the stamps it is given.

# HAZARD: Base is an HLC, not a stamp

A Base names the HLC of the replaced value, not its stamp, and "did W see
L" is approximated by W.Base >= L's HLC. Two writes with the same HLC from
different origins are therefore ambiguous as bases: a writer that saw one
is taken to have seen both, and for Union the base is the one with the
greatest stamp, a deterministic choice that may not be the write the writer
saw. Likewise a write whose HLC is at most W.Base but that W's writer had
not received is taken as seen.

For Union this has a visible consequence. When two writes add concurrently
(a adds x, b adds y), a replica shows {x, y}; if its user then removes x,
the write's base is b (the greatest), whose set lacks x, so the removal of
x is not recognised and x stays. Writing the set with x and then without it
removes x. A projector can avoid this by writing the merged set (with the
greatest stamp's HLC as Base) whenever it differs from the greatest write's
set, so that bases again hold what replicas show.
*/
package merge
