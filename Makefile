# flaxdrm top-level build: Kbuild for the kernel module, CMake for the rest.
#
#   make deps    install every Debian package the project needs (idempotent)
#   make         module + shaders + runtime + userspace
#   make test    kernel style (checkpatch, sparse), host tests (ASan/UBSan), VM tests
#   make demo    an example model through the kernel path inside the VM
#   make bench   benchmarks, each a ratio against a baseline from the same run

SHELL := /bin/bash
ROOT := $(abspath .)
BUILD ?= $(ROOT)/build

# The Debian kernel to build against and boot in the VM: newest installed
# 6.1 headers unless KVER is given (the host's own kernel is irrelevant).
KVER ?= $(shell ls -d /usr/src/linux-headers-6.1.*-amd64 2>/dev/null | sed 's|.*/linux-headers-||' | sort -V | tail -n1)
KDIR ?= /lib/modules/$(KVER)/build
KMOD_DIR := $(BUILD)/kmod/$(KVER)
KMOD := $(KMOD_DIR)/flaxdrm.ko

CMAKE_RELEASE := $(BUILD)/release
CMAKE_SANITIZE := $(BUILD)/sanitize
JOBS ?= $(shell nproc)

DEB_PACKAGES := build-essential cmake pkg-config ninja-build \
	linux-headers-amd64 linux-image-amd64 linux-source-6.1 sparse \
	qemu-system-x86 busybox-static cpio kmod bindfs xz-utils bc flex bison libelf-dev \
	libdrm-dev libvulkan-dev mesa-vulkan-drivers vulkan-tools \
	glslang-tools glslang-dev spirv-tools \
	libgtest-dev libgmock-dev googletest libbenchmark-dev \
	libmsgpack-cxx-dev nlohmann-json3-dev libcli11-dev libopenblas-dev \
	libseccomp-dev python3-numpy python3-torch python3-sklearn python3-msgpack

.PHONY: all deps module userspace vm-bundle sanitize test test-host test-vm demo demo-vm bench \
	checkpatch sparse check-kernel clean

all: module userspace

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

# Kbuild cannot put objects outside M=, so each kernel version gets its own
# directory of symlinks to drm/.
module: $(KMOD)
$(KMOD): $(wildcard drm/*.c drm/*.h drm/Kbuild) uapi/drm/flaxdrm_drm.h
	@test -n "$(KVER)" -a -d "$(KDIR)" || { echo "no kernel headers for '$(KVER)': run make deps"; exit 1; }
	mkdir -p $(KMOD_DIR)
	cd $(KMOD_DIR) && ln -sf $(ROOT)/drm/*.c $(ROOT)/drm/*.h $(ROOT)/drm/Kbuild .
	$(MAKE) -C $(KDIR) M=$(KMOD_DIR) FLAXDRM_UAPI=$(ROOT)/uapi/drm modules

$(CMAKE_RELEASE)/build.ninja:
	cmake -S . -B $(CMAKE_RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(CMAKE_SANITIZE)/build.ninja:
	cmake -S . -B $(CMAKE_SANITIZE) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLAXDRM_SANITIZE=ON

userspace: $(CMAKE_RELEASE)/build.ninja
	cmake --build $(CMAKE_RELEASE) -j $(JOBS)

sanitize: $(CMAKE_SANITIZE)/build.ninja
	cmake --build $(CMAKE_SANITIZE) -j $(JOBS) --target flaxdrm_host_tests

# What a VM run needs: the tests, the flaxdrm tool and the engine.
vm-bundle: $(CMAKE_RELEASE)/build.ninja
	cmake --build $(CMAKE_RELEASE) -j $(JOBS) --target flaxdrm_vm_bundle

# The two commands of the README install what they need first.
test: deps
	$(MAKE) check-kernel test-host test-vm

# Host tests run in the sanitizer build. Mesa's lavapipe leaks a few
# allocations by design at exit, so leak checking stays off for it.
test-host: sanitize
	cd $(CMAKE_SANITIZE) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --output-on-failure -L host

test-vm: module vm-bundle
	KVER=$(KVER) FLAXDRM_REQUIRE_VM_TESTS=1 tests/vm/run-tests.sh

demo: deps
	$(MAKE) demo-vm

demo-vm: module vm-bundle
	KVER=$(KVER) examples/demo.sh

bench: $(CMAKE_RELEASE)/build.ninja
	cmake --build $(CMAKE_RELEASE) -j $(JOBS) --target flaxdrm-bench
	tests/bench/run.sh $(CMAKE_RELEASE)/tests/bench/flaxdrm-bench

# Kernel style: checkpatch from Debian's linux-source tarball, and sparse.
CHECKPATCH := $(BUILD)/checkpatch/scripts/checkpatch.pl
$(CHECKPATCH):
	mkdir -p $(BUILD)/checkpatch
	tar -xf $$(ls /usr/src/linux-source-6.1.tar.xz) -C $(BUILD)/checkpatch --strip-components=1 \
		--wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'

checkpatch: $(CHECKPATCH)
	$(CHECKPATCH) --strict --no-tree --terse --show-types \
		-f drm/*.c drm/*.h uapi/drm/flaxdrm_drm.h

sparse: module
	$(MAKE) -C $(KDIR) M=$(KMOD_DIR) FLAXDRM_UAPI=$(ROOT)/uapi/drm C=2 modules 2>&1 | tee $(BUILD)/sparse.log
	@! grep -E 'warning|error' $(BUILD)/sparse.log

check-kernel: checkpatch sparse

clean:
	rm -rf $(BUILD)
