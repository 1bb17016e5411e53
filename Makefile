# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of xen-gntalloc-rs.ko against a kernel build tree.
#   make                  # against the cached test kernel (scripts/build-kernel)
#   make KDIR=/path       # against another configured and built tree
#   make KCONFIG=arm64-64k  # against another cached kernel (arm64 ones set ARCH=arm64)
#   make CLIPPY=1         # with clippy
# In tree, Kbuild and Kconfig are used directly (see README.md).

XGR_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/xen-gntalloc-rs
KCONFIG ?= test
KDIR ?= $(XGR_CACHE)/kbuild-$(KCONFIG)
ARCH ?= $(if $(filter arm64%,$(KCONFIG)),arm64)
LLVM ?= -22
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
BINDGEN ?= $(XGR_CACHE)/bindgen/bin/bindgen
export LIBCLANG_PATH ?= /usr/lib/llvm-22/lib

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(ARCH),ARCH=$(ARCH)) LLVM=$(LLVM) RUSTC=$(RUSTC) RUSTDOC=$(RUSTDOC) \
	BINDGEN=$(BINDGEN) CLIPPY_DRIVER=$(CLIPPY_DRIVER) $(if $(CLIPPY),CLIPPY=1)

.PHONY: modules clean selftests kernel rustfmt rustfmtcheck
modules:
	@test -f $(KDIR)/Module.symvers || { echo "no built kernel in $(KDIR): run scripts/build-kernel $(KCONFIG)" >&2; exit 1; }
	$(KMAKE) modules

clean:
	$(KMAKE) clean
	$(MAKE) -C selftests clean

selftests:
	$(MAKE) -C selftests KSRC=$$(ls -d $(XGR_CACHE)/src/linux-* | grep -v -- -patched- | tail -n 1)

kernel:
	scripts/build-kernel $(KCONFIG)

# rustfmt with the kernel's settings; the crate root pulls in every module.
rustfmt:
	rustfmt --config-path $(KDIR)/source/.rustfmt.toml gntalloc.rs

rustfmtcheck:
	rustfmt --check --config-path $(KDIR)/source/.rustfmt.toml gntalloc.rs

