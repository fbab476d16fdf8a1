# onsale: make run (a demo sale on :8080), make test (everything CI runs).
GO ?= go
DATA ?= ./data

.PHONY: run build cluster test vet race fuzz-seeds bench crash clean

build:
	$(GO) build -o bin/onsale .

run: build
	./bin/onsale serve --data $(DATA) --demo testdata/demo-sale.json

# Three nodes on this machine (HTTP 8081-8083, Raft 7001-7003), data in
# $(DATA)/n1..n3, the demo sale created by the first leader. Ctrl-C stops all.
CLUSTER_TOKEN ?= cluster-demo-token
PEERS = n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
cluster: build
	@echo "cluster: http://127.0.0.1:8081 .. 8083, admin token $(CLUSTER_TOKEN); try: curl -s -H 'Authorization: Bearer $(CLUSTER_TOKEN)' http://127.0.0.1:8081/v1/cluster"
	@trap 'trap - INT TERM EXIT; kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	for i in 1 2 3; do \
		./bin/onsale serve --addr 127.0.0.1:808$$i --data $(DATA)/n$$i --admin-token $(CLUSTER_TOKEN) \
			--node-id n$$i --raft-addr 127.0.0.1:700$$i --peers $(PEERS) --demo testdata/demo-sale.json & \
	done; wait

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
