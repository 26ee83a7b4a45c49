// Batch planner for the kernels: the C++ twin of mrt_engine/ops/plan_py.py.
// Plain lists in, a dict of int lists out; mrt_engine/ops/plan.py turns them into tensors.
// Any change here must be mirrored in plan_py.py (tests compare both on random inputs).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <vector>

namespace py = pybind11;
using Ints = std::vector<int64_t>;
using IntTable = std::vector<Ints>;

namespace {

// rep[i]: the trace whose rows serve trace i (i itself, or a trace i is a prefix of).
// Stable lexicographic sort; a prefix of its successor is a prefix of the whole chain.
Ints trace_representatives(const IntTable& tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  Ints order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return tokens[a] < tokens[b]; });
  Ints rep(n);
  std::iota(rep.begin(), rep.end(), 0);
  for (int64_t k = n - 2; k >= 0; --k) {
    const Ints& ta = tokens[order[k]];
    const Ints& tb = tokens[order[k + 1]];
    if (ta.size() <= tb.size() && std::equal(ta.begin(), ta.end(), tb.begin())) rep[order[k]] = rep[order[k + 1]];
  }
  return rep;
}

py::dict plan_scoring(const Ints& trace_lens, const IntTable& cuts_per_trace, const IntTable& suffix_lens,
                      const IntTable& trace_tokens) {
  const int64_t num_traces = static_cast<int64_t>(trace_lens.size());
  Ints rep(num_traces);
  if (!trace_tokens.empty()) {
    rep = trace_representatives(trace_tokens);
  } else {
    std::iota(rep.begin(), rep.end(), 0);
  }
  std::map<int64_t, int64_t> slot_of_rep;
  Ints unique_traces, trace_slot(num_traces);
  for (int64_t i = 0; i < num_traces; ++i) {
    auto it = slot_of_rep.find(rep[i]);
    if (it == slot_of_rep.end()) {
      it = slot_of_rep.emplace(rep[i], static_cast<int64_t>(unique_traces.size())).first;
      unique_traces.push_back(rep[i]);
    }
    trace_slot[i] = it->second;
  }
  Ints trace_indptr{0};
  for (int64_t r : unique_traces) trace_indptr.push_back(trace_indptr.back() + trace_lens[r]);
  Ints suffix_indptr{0}, prefix_start, cuts, suffix_positions;
  for (int64_t i = 0; i < num_traces; ++i) {
    for (size_t k = 0; k < cuts_per_trace[i].size(); ++k) {
      const int64_t cut = cuts_per_trace[i][k], n = suffix_lens[i][k];
      suffix_indptr.push_back(suffix_indptr.back() + n);
      prefix_start.push_back(trace_indptr[trace_slot[i]]);
      cuts.push_back(cut);
      for (int64_t j = 0; j < n; ++j) suffix_positions.push_back(cut + j);
    }
  }
  py::dict out;
  out["trace_indptr"] = trace_indptr;
  out["unique_traces"] = unique_traces;
  out["suffix_indptr"] = suffix_indptr;
  out["prefix_start"] = prefix_start;
  out["cuts"] = cuts;
  out["suffix_positions"] = suffix_positions;
  return out;
}

int64_t common_prefix(const Ints& a, const Ints& b, int64_t limit) {
  int64_t n = 0;
  while (n < limit && n < static_cast<int64_t>(a.size()) && n < static_cast<int64_t>(b.size()) && a[n] == b[n]) ++n;
  return n;
}

// Runs of consecutive sequences sharing leading full blocks (see plan_py.plan_decode_lists).
py::dict plan_decode(const IntTable& block_tables, const Ints& context_lens, int64_t block_size, const Ints& group_ids) {
  const int64_t num_seqs = static_cast<int64_t>(block_tables.size());
  Ints full(num_seqs);
  for (int64_t b = 0; b < num_seqs; ++b) full[b] = context_lens[b] / block_size;
  Ints group_indptr{0}, shared_blocks;
  int64_t b = 0;
  while (b < num_seqs) {
    int64_t common = std::min<int64_t>(full[b], static_cast<int64_t>(block_tables[b].size()));
    int64_t e = b + 1;
    while (e < num_seqs) {
      if (!group_ids.empty()) {
        if (group_ids[e] != group_ids[b]) break;
        common = common_prefix(block_tables[b], block_tables[e], std::min(common, full[e]));
      } else {
        const int64_t next = common_prefix(block_tables[b], block_tables[e], std::min(common, full[e]));
        if (next < 1 || 2 * next < common) break;
        common = next;
      }
      ++e;
    }
    shared_blocks.push_back(common);  // a run of one: its full blocks (see plan_py.plan_decode_lists)
    group_indptr.push_back(e);
    b = e;
  }
  const int64_t num_groups = static_cast<int64_t>(shared_blocks.size());
  IntTable shared_tables, tail_tables;
  Ints shared_lens, tail_lens;
  for (int64_t g = 0; g < num_groups; ++g) {
    const Ints& first = block_tables[group_indptr[g]];
    shared_tables.emplace_back(first.begin(), first.begin() + shared_blocks[g]);
    shared_lens.push_back(shared_blocks[g] * block_size);
  }
  for (int64_t g = 0; g < num_groups; ++g) {
    for (int64_t s = group_indptr[g]; s < group_indptr[g + 1]; ++s) {
      const int64_t used = (context_lens[s] + block_size - 1) / block_size;
      const Ints& t = block_tables[s];
      const int64_t lo = std::min<int64_t>(shared_blocks[g], static_cast<int64_t>(t.size()));
      const int64_t hi = std::max(lo, std::min<int64_t>(used, static_cast<int64_t>(t.size())));
      tail_tables.emplace_back(t.begin() + lo, t.begin() + hi);
      tail_lens.push_back(context_lens[s] - shared_lens[g]);
    }
  }
  py::dict out;
  out["group_indptr"] = group_indptr;
  out["shared_block_tables"] = shared_tables;
  out["shared_lens"] = shared_lens;
  out["tail_block_tables"] = tail_tables;
  out["tail_lens"] = tail_lens;
  return out;
}

}  // namespace

void register_planner(py::module_& m) {
  m.def("plan_scoring", &plan_scoring, py::arg("trace_lens"), py::arg("cuts_per_trace"), py::arg("suffix_lens"),
        py::arg("trace_tokens"),
        "Scoring layout (dict of int lists); trace_tokens empty = no cross-trace dedup. Inputs are validated by "
        "mrt_engine.ops.plan.plan_scoring.");
  m.def("plan_decode", &plan_decode, py::arg("block_tables"), py::arg("context_lens"), py::arg("block_size"),
        py::arg("group_ids"),
        "Cascade decode groups (dict of int lists); group_ids empty = group by shared leading blocks. Inputs are "
        "validated by mrt_engine.ops.plan.plan_decode.");
}
