// pybind11 module mrt_engine._C: host-side helpers. Each area registers its functions from
// its own translation unit so the parts stay in separate files.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_text(py::module_& m);     // text.cpp: token offsets, marker search
void register_planner(py::module_& m);  // planner.cpp: scoring/branch plans for the kernels

PYBIND11_MODULE(_C, m) {
  m.doc() = "mrt_engine native helpers (optional; pure-Python fallbacks exist)";
  register_text(m);
  register_planner(m);
}
