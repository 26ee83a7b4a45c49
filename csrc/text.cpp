// Text helpers for the segmenter (mrt_engine/episodes.py holds the Python twins; both must
// agree exactly, tests/test_native_text.py checks it).
//
// Offsets are Python code points. Text arrives as UTF-8 bytes (Python encodes with
// "surrogatepass", so even lone surrogates are 3-byte sequences with a lead byte); a code
// point starts at every byte that is not a continuation byte (10xxxxxx), so counting those
// turns byte offsets into code-point offsets in the same pass as the scan.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

inline bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// The R1 rule: paragraphs split on "\n\n"; a paragraph that starts with a keyword starts a new
// episode when at least `min_paragraphs` paragraphs lie since the previous boundary (the trace
// start is a boundary). Returns the code-point offsets of those paragraph starts.
std::vector<int64_t> r1_cuts(const std::string& text, const std::vector<std::string>& keywords,
                             int64_t min_paragraphs) {
  if (min_paragraphs < 1) throw py::value_error("min_paragraphs must be >= 1");
  for (const auto& k : keywords)
    if (k.empty()) throw py::value_error("keywords must be non-empty strings");
  std::vector<int64_t> cuts;
  int64_t last_boundary = 0;  // paragraph index
  int64_t index = 0;          // current paragraph index
  size_t start = 0;           // byte offset of the current paragraph
  size_t counted_bytes = 0;   // code points counted up to this byte offset
  int64_t code_points = 0;
  while (true) {
    if (index - last_boundary >= min_paragraphs) {
      for (const auto& k : keywords) {
        if (text.compare(start, k.size(), k) == 0) {
          for (; counted_bytes < start; ++counted_bytes)
            code_points += !is_continuation(static_cast<unsigned char>(text[counted_bytes]));
          cuts.push_back(code_points);
          last_boundary = index;
          break;
        }
      }
    }
    size_t sep = text.find("\n\n", start);
    if (sep == std::string::npos) return cuts;
    start = sep + 2;
    ++index;
  }
}

// t(c) = min{i : token_end[i] > c}, or the number of tokens. Validates the offset mapping the
// same way the Python twin does (same messages).
std::vector<int64_t> char_to_token_offsets(const std::vector<int64_t>& char_offsets,
                                           const std::vector<std::pair<int64_t, int64_t>>& spans) {
  std::vector<int64_t> ends;
  ends.reserve(spans.size());
  int64_t prev_end = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const int64_t start = spans[i].first, end = spans[i].second;
    if (!(0 <= start && start <= end) || end < prev_end) {
      throw py::value_error(
          "token_char_spans[" + std::to_string(i) + "] = (" + std::to_string(start) + ", " +
          std::to_string(end) +
          ") is not a valid offset mapping entry (need 0 <= start <= end and ends non-decreasing; "
          "previous end " + std::to_string(prev_end) +
          "). Tokenize without special tokens (add_special_tokens=False).");
    }
    ends.push_back(end);
    prev_end = end;
  }
  std::vector<int64_t> out;
  out.reserve(char_offsets.size());
  for (int64_t c : char_offsets) {
    if (c < 0) throw py::value_error("char offsets must be >= 0");
    out.push_back(std::upper_bound(ends.begin(), ends.end(), c) - ends.begin());
  }
  return out;
}

}  // namespace

void register_text(py::module_& m) {
  m.def(
      "r1_cuts",
      [](const py::bytes& text, const std::vector<py::bytes>& keywords, int64_t min_paragraphs) {
        std::string t = text;
        std::vector<std::string> ks(keywords.begin(), keywords.end());
        py::gil_scoped_release release;
        return r1_cuts(t, ks, min_paragraphs);
      },
      py::arg("text_utf8"), py::arg("keywords_utf8"), py::arg("min_paragraphs"),
      "Code-point offsets where the R1 rule starts episodes (text and keywords as UTF-8 bytes).");
  m.def("char_to_token_offsets", &char_to_token_offsets, py::arg("char_offsets"), py::arg("token_char_spans"),
        "Token offset of each char offset: first token whose end is past it.");
}
