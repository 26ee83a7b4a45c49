"""An exact-J toy: the RL credit of GRPO, dense MRT and scalar MRT checked without a language model.

The "model" is a tabular softmax policy over three episode types, indexed by the episode's
position k in the trace (``logits [max_episodes, 3]``):

- ``productive``: raises the count n of productive episodes (costs ``episode_tokens[0]``);
- ``redundant``: costs ``episode_tokens[1]`` tokens and changes nothing;
- ``answer``: stop and answer (costs ``episode_tokens[2]``). After ``max_episodes`` thinking
  episodes the answer is forced (that position is no decision and is not trained on).

Forced termination after a prefix with n productive episodes succeeds with the closed form
``J(n) = 1 - (1 - p)^n`` (each productive episode independently "finds" the answer with
probability p; J(0) = 0). A trace's outcome is ``Bernoulli(J(n_final))`` drawn from a seeded
``torch.Generator``. Since J rises with n and nothing else, the best policy is productive at
every position up to the cap, and every redundant episode is pure waste.

Each episode is one action token of the policy-loss tensors: position t of ``[N, max_episodes+1]``
is the decision at episode index t (so ``aggregation="grpo"`` averages over decisions, not over
the episode's token count, which only enters the token metrics and regret).

Training uses the library's own pure functions (``mrt_engine.rl``): ``group_advantages``,
``token_advantages``, ``episode_progress``, ``dense_progress_rewards``, ``scalar_mrt_advantages``
and ``policy_loss`` (one update per batch, so the ratio is 1), with Adam on the logits.

Arms (``ARMS``): ``grpo`` (outcome only); ``mrt_dense`` (group-normalised outcome plus alpha
times each episode's progress on its token); ``mrt_scalar`` (a prefix cut uniformly at
0..L-1 of a sampled trace, ``num_continuations`` on-policy continuations from it, advantage
``R - J(prefix)``). The MRT arms take J either exact (the closed form at every cut) or estimated
from k independent Bernoulli(J) forced answers per cut. For scalar MRT with k samples these are
k terminated continuations (``scalar_mrt_advantages`` with a ``terminated`` mask); with exact J
the baseline is passed as ``baseline=`` and no continuation is terminated.

Where the toy departs from the library's training path (say so when quoting it):
- The answer position gets no dense term: its credit is the outcome advantage alone (the
  trainer's ``natural_end: outcome`` would add ``R - J(n_final)``, zero-mean noise here).
- Estimated J draws independent samples at every cut. The library's sample mode shares one
  random stream across the cuts of a trace; in this toy that coupling (``u < J(n)``) would make
  a redundant episode's estimated progress exactly 0, hiding the noise this toy measures.
- The redundant fraction is a ratio of expectations, ``E[#redundant] / E[#thinking episodes]``,
  computed exactly from the policy (a forward pass over (position, n)), as are success and
  tokens; only regret is Monte Carlo.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field

import torch

from mrt_engine.metrics import normalized_regret, student_t_quantile
from mrt_engine.rl.losses import AGGREGATIONS
from mrt_engine.rl import (centred_progress, dense_progress_rewards, episode_progress, group_advantages, policy_loss,
                           progress_to_go, scalar_mrt_advantages, shuffle_across_traces, shuffle_within_traces,
                           token_advantages)

ACTIONS = ("productive", "redundant", "answer")
PRODUCTIVE, REDUNDANT, ANSWER = 0, 1, 2
ALGOS = ("grpo", "mrt_dense", "mrt_scalar", "mrt_dense_to_go", "mrt_dense_centred", "mrt_dense_placebo",
         "mrt_dense_placebo_within")
# (algorithm, J estimate): None = exact J (GRPO ignores J); an int k = k forced answers per cut.
ARMS = (("grpo", None), ("mrt_dense", None), ("mrt_dense", 16), ("mrt_dense", 4), ("mrt_dense", 1),
        ("mrt_scalar", None), ("mrt_scalar", 16), ("mrt_scalar", 4), ("mrt_scalar", 1))
# `mrt-engine toy --credit-forms`: the dense credit forms of rl/rewards.py and both placebos, exact J
CREDIT_ARMS = (("grpo", None), ("mrt_dense", None), ("mrt_dense_to_go", None), ("mrt_dense_centred", None),
               ("mrt_dense_placebo", None), ("mrt_dense_placebo_within", None))


def arm_name(algo: str, k: int | None) -> str:
    return algo if algo == "grpo" else f"{algo}/{'exact' if k is None else f'k={k}'}"


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class ToyConfig:
    p: float = 0.3                        # J(n) = 1 - (1-p)^n
    max_episodes: int = 8                 # thinking episodes before the answer is forced
    episode_tokens: tuple = (16, 16, 4)   # tokens of a productive, redundant, answer episode
    init_probs: tuple = (0.25, 0.55, 0.20)  # initial policy at every position (mostly redundant)
    group_size: int = 16                  # traces per step (GRPO, dense MRT)
    num_prefixes: int = 4                 # scalar MRT: prefixes per step ...
    num_continuations: int = 4            # ... times continuations each (same 16 trained traces)
    steps: int = 40
    lr: float = 0.05                      # Adam on the logits
    alpha: float = 1.0                    # dense MRT: weight of the progress term
    aggregation: str = "grpo"             # policy_loss reduction (the trainer's default, algo.aggregation)
    eval_every: int = 10                  # exact metrics every this many steps (history)
    regret_traces: int = 256              # Monte-Carlo traces for the final normalized regret

    def __post_init__(self):
        self.episode_tokens = tuple(self.episode_tokens)
        self.init_probs = tuple(self.init_probs)
        _check(0.0 < self.p < 1.0, f"p={self.p}: the per-episode success chance must lie in (0, 1)")
        _check(self.max_episodes >= 1, f"max_episodes={self.max_episodes}: need at least 1")
        _check(len(self.episode_tokens) == 3 and all(t > 0 for t in self.episode_tokens),
               f"episode_tokens={self.episode_tokens}: give 3 positive lengths (productive, redundant, answer)")
        _check(len(self.init_probs) == 3 and all(q > 0 for q in self.init_probs)
               and abs(sum(self.init_probs) - 1.0) < 1e-6,
               f"init_probs={self.init_probs}: give 3 positive probabilities that sum to 1")
        for name in ("group_size", "num_prefixes", "num_continuations", "eval_every", "regret_traces"):
            _check(getattr(self, name) >= 1, f"{name}={getattr(self, name)}: must be >= 1")
        _check(self.group_size >= 2, f"group_size={self.group_size}: GRPO needs at least 2 traces per group")
        _check(self.steps >= 0, f"steps={self.steps}: must be >= 0")
        _check(self.lr > 0, f"lr={self.lr}: must be > 0")
        _check(self.aggregation in AGGREGATIONS, f"aggregation={self.aggregation!r}: use one of {AGGREGATIONS}")


def closed_form_j(n, p: float) -> torch.Tensor:
    """Success of forced termination after n productive episodes: ``1 - (1 - p)^n``."""
    n = torch.as_tensor(n, dtype=torch.float32)
    return 1.0 - (1.0 - p) ** n


def initial_logits(cfg: ToyConfig) -> torch.Tensor:
    return torch.log(torch.tensor(cfg.init_probs, dtype=torch.float32)).repeat(cfg.max_episodes, 1)


@dataclass
class Rollout:
    actions: torch.Tensor     # [N, K+1] long, -1 past the answer
    decided: torch.Tensor     # [N, K+1] bool: the policy chose this action (trained positions)
    n_cut: torch.Tensor       # [N, K+1] productive count after t thinking episodes
    num_thinking: torch.Tensor  # [N] L: thinking episodes before the answer
    outcome: torch.Tensor     # [N] 0/1

    @property
    def n_final(self) -> torch.Tensor:
        return self.n_cut.gather(1, self.num_thinking[:, None]).squeeze(1)


def rollout(logits: torch.Tensor, num: int, gen: torch.Generator, p: float, *,
            prefix: torch.Tensor | None = None, start: torch.Tensor | None = None) -> Rollout:
    """Sample ``num`` traces; with ``prefix [num, K+1]`` and ``start [num]``, rows copy the
    prefix's first ``start`` (thinking) episodes and the policy continues from there."""
    K = logits.shape[0]
    probs = torch.softmax(logits.detach(), dim=-1)
    actions = torch.full((num, K + 1), -1, dtype=torch.long)
    decided = torch.zeros(num, K + 1, dtype=torch.bool)
    n_cut = torch.zeros(num, K + 1, dtype=torch.long)
    alive = torch.ones(num, dtype=torch.bool)
    n = torch.zeros(num, dtype=torch.long)
    start = torch.zeros(num, dtype=torch.long) if start is None else start
    for t in range(K + 1):
        n_cut[:, t] = n
        if t == K:
            act = torch.full((num,), ANSWER, dtype=torch.long)
        else:
            act = torch.multinomial(probs[t].expand(num, 3), 1, generator=gen).squeeze(1)
            if prefix is not None:
                act = torch.where(t < start, prefix[:, t], act)
        act = torch.where(alive, act, torch.full_like(act, -1))
        actions[:, t] = act
        decided[:, t] = alive & (t >= start) & (t < K)
        n = n + (act == PRODUCTIVE).long()
        alive = alive & (act != ANSWER)
    num_thinking = ((actions == PRODUCTIVE) | (actions == REDUNDANT)).sum(dim=1)
    n_final = n_cut.gather(1, num_thinking[:, None]).squeeze(1)
    outcome = (torch.rand(num, generator=gen) < closed_form_j(n_final, p)).float()
    return Rollout(actions, decided, n_cut, num_thinking, outcome)


def _logp(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(action at t | t) for every position ``[N, K+1]`` (the forced last one reads row K-1;
    it is masked out)."""
    K = logits.shape[0]
    table = torch.log_softmax(logits, dim=-1)[torch.arange(K + 1).clamp(max=K - 1)]  # [K+1, 3]
    return table[None].expand(actions.shape[0], -1, -1).gather(2, actions.clamp(min=0)[..., None]).squeeze(2)


def estimate_j(n_cut: torch.Tensor, p: float, k: int | None, gen: torch.Generator) -> torch.Tensor:
    """J at every cut: exact (k None) or the mean of k independent Bernoulli(J) forced answers."""
    exact = closed_form_j(n_cut, p)
    if k is None:
        return exact
    return (torch.rand(*n_cut.shape, k, generator=gen) < exact[..., None]).float().mean(dim=-1)


def _dense_advantages(ro: Rollout, cfg: ToyConfig, k: int | None, gen: torch.Generator,
                      algo: str = "mrt_dense") -> torch.Tensor:
    seq = group_advantages(ro.outcome, cfg.group_size)
    j_hat = estimate_j(ro.n_cut, cfg.p, k, gen)
    progress, spans = [], []
    for i, length in enumerate(ro.num_thinking.tolist()):
        progress.append(episode_progress(j_hat[i, :length + 1]))
        spans.append([(t, t + 1) for t in range(length)])
    credit = _episode_credit(progress, algo, cfg, gen)
    dense = dense_progress_rewards(credit, spans, ro.actions.shape[1], alpha=cfg.alpha)
    return token_advantages(seq, ro.decided, dense)


def _episode_credit(progress: list[torch.Tensor], algo: str, cfg: ToyConfig, gen: torch.Generator) -> list:
    """The value each episode's token gets (before alpha): the credit form of ``algo``, from the
    same pure functions the trainer's algorithms use (``mrt_engine.rl.rewards``)."""
    if algo == "mrt_dense":
        return progress
    if algo == "mrt_dense_to_go":
        return [progress_to_go(p) for p in progress]
    if algo == "mrt_dense_centred":
        return centred_progress(progress, [i // cfg.group_size for i in range(len(progress))])
    rng = random.Random(int(torch.randint(2 ** 31, (1,), generator=gen)))
    shuffle = shuffle_across_traces if algo == "mrt_dense_placebo" else shuffle_within_traces
    return [torch.tensor(c, dtype=torch.float32) for c in shuffle(progress, rng)]


def _scalar_batch(logits, cfg: ToyConfig, k: int | None, gen: torch.Generator):
    P, m = cfg.num_prefixes, cfg.num_continuations
    pre = rollout(logits, P, gen, cfg.p)
    # cut uniform over 0..L-1 (never the whole trace); a trace that answered at once gives the empty prefix
    cut = (torch.rand(P, generator=gen) * pre.num_thinking.clamp(min=1)).long()
    n_prefix = pre.n_cut.gather(1, cut[:, None]).squeeze(1)
    cont = rollout(logits, P * m, gen, cfg.p, prefix=pre.actions.repeat_interleave(m, 0),
                   start=cut.repeat_interleave(m))
    rewards = cont.outcome.view(P, m)
    if k is None:
        adv = scalar_mrt_advantages(rewards, torch.zeros(P, m, dtype=torch.bool),
                                    baseline=closed_form_j(n_prefix, cfg.p))
    else:
        term = (torch.rand(P, k, generator=gen) < closed_form_j(n_prefix, cfg.p)[:, None]).float()
        terminated = torch.cat([torch.zeros(P, m, dtype=torch.bool), torch.ones(P, k, dtype=torch.bool)], 1)
        adv = scalar_mrt_advantages(torch.cat([rewards, term], 1), terminated)[:, :m]
    return cont, token_advantages(adv.reshape(-1), cont.decided)


def exact_metrics(logits: torch.Tensor, cfg: ToyConfig) -> dict:
    """Expected success, tokens, episodes and redundant fraction of the policy, by a forward pass
    over (position, n): no sampling."""
    K = cfg.max_episodes
    probs = torch.softmax(logits.detach().double(), dim=-1)
    tok_p, tok_r, tok_a = (float(t) for t in cfg.episode_tokens)
    alive = torch.zeros(K + 1, dtype=torch.float64)  # mass of live traces by n
    alive[0] = 1.0
    j = closed_form_j(torch.arange(K + 1), cfg.p).double()
    success = thinking = redundant = tokens = 0.0
    for t in range(K + 1):
        q = probs[t] if t < K else torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        mass = float(alive.sum())
        success += float((alive * q[ANSWER] * j).sum())
        thinking += mass * float(q[PRODUCTIVE] + q[REDUNDANT])
        redundant += mass * float(q[REDUNDANT])
        tokens += mass * float(q[PRODUCTIVE] * tok_p + q[REDUNDANT] * tok_r + q[ANSWER] * tok_a)
        moved = torch.zeros_like(alive)
        moved[1:] = alive[:-1] * q[PRODUCTIVE]
        alive = moved + alive * q[REDUNDANT]
    return {"success": success, "tokens": tokens, "episodes": thinking,
            "redundant_fraction": redundant / thinking if thinking > 0 else 0.0}


def regret_budget(cfg: ToyConfig) -> float:
    """The budget of a full-length trace: max_episodes of the longer thinking episode plus the answer."""
    return float(cfg.max_episodes * max(cfg.episode_tokens[:2]) + cfg.episode_tokens[2])


def mc_regret(logits: torch.Tensor, cfg: ToyConfig, gen: torch.Generator) -> float:
    """Mean normalized regret (docs/method.md section 7) of sampled traces: one point per cut,
    tokens = prefix + the answer episode, J exact."""
    ro = rollout(logits, cfg.regret_traces, gen, cfg.p)
    lengths = torch.tensor([float(cfg.episode_tokens[0]), float(cfg.episode_tokens[1])])
    budget, total = regret_budget(cfg), 0.0
    for i, length in enumerate(ro.num_thinking.tolist()):
        acts = ro.actions[i, :length]
        tokens = torch.cat([torch.zeros(1), torch.cumsum(lengths[acts], 0)]) + cfg.episode_tokens[2]
        j = closed_form_j(ro.n_cut[i, :length + 1], cfg.p)
        total += normalized_regret(tokens.tolist(), j.tolist(), budget)
    return total / cfg.regret_traces


def train_arm(cfg: ToyConfig, algo: str, k: int | None, seed: int) -> dict:
    """Train one arm from the initial policy; return the final exact metrics, regret and history."""
    _check(algo in ALGOS, f"algo={algo!r}: use one of {ALGOS}")
    _check(k is None or k >= 1, f"k={k}: forced answers per cut must be >= 1 (or None for exact J)")
    gen = torch.Generator().manual_seed(seed)
    logits = initial_logits(cfg).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=cfg.lr)
    history = [{"step": 0, **exact_metrics(logits, cfg)}]
    for step in range(1, cfg.steps + 1):
        if algo == "mrt_scalar":
            ro, adv = _scalar_batch(logits, cfg, k, gen)
        else:
            ro = rollout(logits, cfg.group_size, gen, cfg.p)
            adv = (token_advantages(group_advantages(ro.outcome, cfg.group_size), ro.decided) if algo == "grpo"
                   else _dense_advantages(ro, cfg, k, gen, algo))
        logp = _logp(logits, ro.actions)
        out = policy_loss(logp, logp.detach(), adv, ro.decided.float(), aggregation=cfg.aggregation,
                          max_tokens=cfg.max_episodes)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            history.append({"step": step, **exact_metrics(logits, cfg)})
    final = dict(history[-1])
    final.pop("step")
    final["regret"] = mc_regret(logits, cfg, gen)
    return {"arm": arm_name(algo, k), "seed": seed, "final": final, "history": history}


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile, exact for any df (:func:`mrt_engine.metrics.student_t_quantile`)."""
    return student_t_quantile(0.975, df) if df >= 1 else float("nan")


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval over seeds (nan half-width for one seed)."""
    x = torch.as_tensor(list(values), dtype=torch.float64)
    if x.numel() == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    if x.numel() < 2:
        return mean, float("nan")
    return mean, t_quantile_975(x.numel() - 1) * float(x.std(unbiased=True)) / math.sqrt(x.numel())


METRICS = ("success", "tokens", "episodes", "redundant_fraction", "regret")


@dataclass
class ToyResult:
    config: dict
    seeds: list
    arms: list
    runs: list = field(repr=False)
    summary: dict = field(default_factory=dict)
    paired_vs_grpo: dict = field(default_factory=dict)
    initial: dict = field(default_factory=dict)
    optimum: dict = field(default_factory=dict)
    seconds: float = 0.0


def run_toy(cfg: ToyConfig, seeds, arms=ARMS) -> ToyResult:
    """Every arm on every seed (the same seed per arm: same start, correlated samples), then
    mean and 95% interval per metric, and per-seed differences against GRPO."""
    seeds = list(seeds)
    _check(len(seeds) >= 1, "seeds: give at least one seed")
    t0 = time.perf_counter()
    runs = [train_arm(cfg, algo, k, s) for algo, k in arms for s in seeds]
    names = [arm_name(a, k) for a, k in arms]
    by_arm = {n: [r for r in runs if r["arm"] == n] for n in names}
    summary = {n: {m: mean_ci(r["final"][m] for r in rs) for m in METRICS} for n, rs in by_arm.items()}
    paired = {}
    if "grpo" in by_arm:
        base = {r["seed"]: r["final"] for r in by_arm["grpo"]}
        for n, rs in by_arm.items():
            if n != "grpo":
                paired[n] = {m: mean_ci(r["final"][m] - base[r["seed"]][m] for r in rs)
                             for m in ("success", "redundant_fraction")}
    K = cfg.max_episodes
    optimum = {"success": float(closed_form_j(K, cfg.p)), "tokens": float(K * cfg.episode_tokens[0] + cfg.episode_tokens[2]),
               "episodes": float(K), "redundant_fraction": 0.0}
    return ToyResult(config=asdict(cfg), seeds=seeds, arms=names, runs=runs, summary=summary, paired_vs_grpo=paired,
                     initial=exact_metrics(initial_logits(cfg), cfg), optimum=optimum,
                     seconds=time.perf_counter() - t0)


def format_table(result: ToyResult) -> str:
    """Markdown: mean +- 95% half-width over seeds per arm, plus the redundant-fraction and
    success difference against GRPO paired by seed."""
    n = len(result.seeds)
    head = ("| arm | success E[J] | tokens/trace | episodes/trace | redundant fraction | normalized regret "
            "| redundant - GRPO (paired) | success - GRPO (paired) |")
    lines = [head, "|" + "---|" * 8]
    ini, opt = result.initial, result.optimum
    lines.append(f"| initial policy | {ini['success']:.3f} | {ini['tokens']:.1f} | {ini['episodes']:.2f} | "
                 f"{ini['redundant_fraction']:.3f} | | | |")
    lines.append(f"| optimum (all productive) | {opt['success']:.3f} | {opt['tokens']:.1f} | {opt['episodes']:.2f} | "
                 f"0.000 | | | |")
    for name in result.arms:
        s = result.summary[name]
        cells = [f"{s['success'][0]:.3f} ± {s['success'][1]:.3f}", f"{s['tokens'][0]:.1f} ± {s['tokens'][1]:.1f}",
                 f"{s['episodes'][0]:.2f} ± {s['episodes'][1]:.2f}",
                 f"{s['redundant_fraction'][0]:.3f} ± {s['redundant_fraction'][1]:.3f}",
                 f"{s['regret'][0]:.3f} ± {s['regret'][1]:.3f}"]
        d = result.paired_vs_grpo.get(name)
        cells += ([f"{d['redundant_fraction'][0]:+.3f} ± {d['redundant_fraction'][1]:.3f}",
                   f"{d['success'][0]:+.3f} ± {d['success'][1]:.3f}"] if d else ["", ""])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cfg = result.config
    lines.append("")
    lines.append(f"{n} seeds, {cfg['steps']} steps, {cfg['group_size']} traces per step (scalar: {cfg['num_prefixes']} prefixes x {cfg['num_continuations']} continuations); mean ± 95% t-interval half-width "
                 f"over seeds; aggregation {cfg['aggregation']}. J(n) = 1 - (1 - {cfg['p']})^n, cap {cfg['max_episodes']} episodes; "
                 f"regret at budget {regret_budget(ToyConfig(**cfg)):.0f} tokens.")
    return "\n".join(lines)
