# onsale: make run (a demo sale on :8080), make test (everything CI runs).
GO ?= go
DATA ?= ./data

.PHONY: run build test vet race fuzz-seeds bench crash clean

build:
	$(GO) build -o bin/onsale .

run: build
	./bin/onsale serve --data $(DATA) --demo testdata/demo-sale.json

vet:
	$(GO) vet ./...

# The race detector over every package; fuzz targets run their seed corpora
# as ordinary tests. Allocation budgets are checked without -race, which
# allocates on its own.
test: vet
	$(GO) test -count=1 -run 'Allocs' ./actors/... ./wal/
	$(GO) test -race -count=1 -timeout 15m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./wal/ ./actors/... ./httpapi/

clean:
	rm -rf bin $(DATA)
