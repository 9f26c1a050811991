// Python bindings of the osaurus CPU kernels (module osaurus.engine.native._kernels).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>

#include "quantized.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_kernels, m) {
  m.doc() = "CPU kernels for MLX's affine-quantized weights (see kernels.h)";

  m.def("quantized_matmul", &osaurus::quantized_matmul, "x"_a, "w"_a, "scales"_a, "biases"_a,
        "transpose"_a = true, "group_size"_a = 64, "bits"_a = 4, nb::kw_only(),
        "kernel"_a = "auto", "stream"_a = nb::none(),
        "x @ dequant(w).T (or x @ dequant(w) when transpose is False), as "
        "mx.quantized_matmul computes it for mode 'affine'.");
  m.def("dequantize", &osaurus::dequantize, "w"_a, "scales"_a, "biases"_a,
        "group_size"_a = 64, "bits"_a = 4, nb::kw_only(), "kernel"_a = "auto",
        "stream"_a = nb::none(), "dequant(w) as float32.");
  m.def("simd", &osaurus::simd_name, "The instruction set the kernels were built for.");
  m.def("num_threads", &osaurus::num_threads, "Threads a large matmul is split over.");
}
