"""Build configuration for the compiled span path (everything else is in pyproject.toml).

``collector.receiver._spanwire`` is a C extension built with the C compiler the
machine has (gcc on Debian); no toolchain is downloaded. It is optional: where it
cannot be built, the install still succeeds and the receivers use the pure-Python
reference path (the service logs which path is active). CFLAGS/LDFLAGS from the
environment are honoured, e.g. for the AddressSanitizer build in .ci/run.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "collector.receiver._spanwire",
    sources=["collector/receiver/spanwire/spanwire.c", "collector/receiver/spanwire/module.c"],
    depends=["collector/receiver/spanwire/spanwire.h"],
    extra_compile_args=["-O2", "-std=gnu11", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
    optional=True,
)])
