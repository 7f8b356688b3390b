"""Builds the C++ extension with CMake (the same build tree the Makefile uses)."""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.join(ROOT, "build")
        jobs = str(os.cpu_count() or 2)
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, f"-DPython_EXECUTABLE={sys.executable}"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "_xgrad", "-j", jobs])
        built = [f for f in os.listdir(build_dir) if f.startswith("_xgrad") and f.endswith(".so")]
        if not built:
            raise RuntimeError("CMake did not produce the _xgrad extension in " + build_dir)
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(build_dir, built[0]), target)
        # The CUDA backend (opened on the first device request) and the MPI plugin (opened by
        # xgrad.distributed), beside the module when they were built.
        for name in ("libxgrad_cuda.so", "libxgrad_mpi.so"):
            plugin = os.path.join(build_dir, name)
            placed = os.path.join(os.path.dirname(target), name)
            if os.path.exists(plugin):
                shutil.copyfile(plugin, placed)
            elif os.path.exists(placed):
                os.remove(placed)


setup(ext_modules=[CMakeExtension("xgrad._xgrad")], cmdclass={"build_ext": CMakeBuild})
