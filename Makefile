# bodhi: thin wrapper over CMake.
#   make run    install missing Debian packages, configure, build, train the default experiment
#   make test   the same set-up, then every Criterion suite through ctest
#   make bench  environment benchmarks (JSON lines)
#   make asan   tests under AddressSanitizer + UBSan (build-asan/)
#   make install  the Python package and the libraries it needs under PREFIX (docs/python.md)
BUILD   ?= build
JOBS    ?= $(shell nproc)
EXP     ?= experiments/cartpole_ppo.yml
CMAKE_FLAGS ?=
PREFIX  ?= /usr/local
DEBS = build-essential cmake ninja-build pkg-config libnng-dev libhdf5-dev \
       libcriterion-dev libtorch-dev libgloo-dev libopenblas-dev libsleef-dev librandom123-dev libyaml-dev \
       libcjson-dev libmbedtls-dev python3-dev python3-h5py python3-numpy python3-pandas python3-torch clang libclang-rt-14-dev \
       hdf5-filter-plugin hdf5-filter-plugin-blosc-serial libcairo2-dev hdf5-tools \
       libprotobuf-c-dev protobuf-c-compiler python3-protobuf libmicrohttpd-dev openmpi-bin chromium

.PHONY: all deps configure build run test bench asan install clean

all: build

deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "bodhi: installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "bodhi: run as root (or install them yourself)"; exit 2; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/bodhi run $(EXP)

test: build
	cd $(BUILD) && ctest --output-on-failure

bench: build
	$(BUILD)/bodhi bench --json

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBODHI_SANITIZE=ON -DBODHI_CUDA=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure

clean:
	rm -rf $(BUILD) build-asan
