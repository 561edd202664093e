package main

import (
	"strings"
	"testing"
)

func TestParseTrytondConf(t *testing.T) {
	cases := []struct {
		name, conf string
		want       trytondConf
		err        string
	}{
		{"satellite", `
[database]
uri = postgresql://tryton:secret@db.clinic:5432/
[synchronisation]
id = 12
url = https://central.moh.gov.jm:7420
database = health
token = abc`, trytondConf{ID: 12, Central: "https://central.moh.gov.jm:7420", Token: "abc", Database: "postgres://tryton:secret@db.clinic:5432/health"}, ""},
		{"jamaica's uri key, central", "[synchronisation]\nid: 0\nuri = http://c/\n", trytondConf{ID: 0, Central: "http://c/"}, ""},
		{"no section", "[database]\npath = /var/lib\n", trytondConf{ID: -1}, ""},
		{"sqlite", "[database]\nuri = sqlite://\npath = /var/lib/trytond/\n[synchronisation]\nid = 3\ndatabase = clinic\n",
			trytondConf{ID: 3, Database: "sqlite:/var/lib/trytond/clinic.sqlite"}, ""},
		{"id out of range", "[synchronisation]\nid = 600\n", trytondConf{}, "want an integer 0..511"},
		{"server without database", "[database]\nuri = postgresql://localhost/\n", trytondConf{}, "no database"},
		{"bad line", "[synchronisation]\nid\n", trytondConf{}, "line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseTrytondConf(strings.NewReader(c.conf), "trytond.conf")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || *got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
