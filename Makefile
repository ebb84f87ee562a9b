GO      ?= go
BIN     := bin/sluice
SUDO    := $(shell [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null && echo sudo)

.PHONY: build run test deps vet bench fuzz clean

## build: compile the server into bin/sluice
build:
	$(GO) build -o $(BIN) ./cmd/sluice

## run: build, then start on the built-in defaults (RTMP :1935, HTTP :8080)
run: build
	./$(BIN)

## deps: install what the tests need (ffmpeg/ffprobe) when missing
deps:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then \
		echo "installing ffmpeg"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y ffmpeg; \
	fi

## vet: go vet and gofmt
vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## test: install test needs, vet, then every test (unit, fuzz seed corpora, end to end)
test: deps vet
	$(GO) test -count=1 -timeout 15m ./...

## soak: the long churn test: 10 000 connect/play/disconnect cycles over every
## protocol, then goroutines, fds and RSS must be back within 10% (numbers logged)
.PHONY: soak
soak:
	SLUICE_CHURN_CYCLES=10000 $(GO) test -count=1 -run '^TestChurn$$' -v -timeout 30m ./pkg/server/

## bench: the Go benchmarks (fan-out, muxers, chunking)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

## fuzz: run each fuzz target for FUZZTIME (default 60s)
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./pkg/...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin

## bench-load: the load matrix of docs/PERFORMANCE.md: Sluice and the rawcopy
## baseline pinned to CPU 0, publisher and load tool on CPU 1 (about 6 min);
## one JSON line per run. BENCH_ARGS passes flags, e.g. BENCH_ARGS='-runs flv:1000'
BENCH_ARGS ?=
.PHONY: bench-load
bench-load:
	$(GO) build -o bin/sluice ./cmd/sluice
	$(GO) build -o bin/sluice-bench ./cmd/sluice-bench
	./bin/sluice-bench matrix -sluice bin/sluice $(BENCH_ARGS)
