// `nnserve run MODEL_DIR [--version N] [--input X.npy|X.csv|-]
// [--output Y.npy] [--precision P]`: an offline forward pass without a
// server. Loads the model (with full validation) in its configured
// precision or the one --precision names, reads the input rows (a .npy or
// CSV file, by content; "-" or no --input reads .npy or CSV from stdin, see
// input_reader.h), checks them exactly like the
// server does (feature count, finite values), runs the forward pass and
// prints one line per row: the output vector and, for models with labels,
// the argmax label. A model loaded in (or asked for) BF16/INT8 first gets a
// "# precision ..." line: effective precision, any fallback, and the
// largest deviation from FP32 the load-time probe measured. --output writes
// the outputs as a float32 .npy of shape [rows, outputs]. Stateless;
// thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_RUN_COMMAND_H_
#define NNSERVE_SERVER_COMMANDS_RUN_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <istream>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace nnserve::server {

struct RunOptions {
  std::filesystem::path model_dir;
  int64_t version = 0;      // 0 = newest.
  std::string input = "-";  // Path, or "-" for .npy or CSV on `stdin`.
  std::string output;       // .npy path; empty = none.
  int intra_op_threads = 1;
  // "fp32", "bf16" or "int8" overrides config.pbtxt's precision; "" = as
  // configured.
  std::string precision;
};

// Runs the command; `in` is read when input is "-", results go to `out`.
absl::Status RunOffline(const RunOptions& options, std::istream& in,
                        std::ostream& out);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_RUN_COMMAND_H_
