"""The shop that ``tocsin demo`` plays: three services, thirteen routes,
log-normal latencies, a few errors, and a scripted checkout incident.

Everything here is pure: a seeded ``random.Random`` and the phase decide each
request's plan (a tree of calls with durations and status codes); turning the
plan into spans is ``collector.demo``'s job. Same seed, same phases: same plans.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

NORMAL, INCIDENT, RECOVERED = "normal", "incident", "recovered"


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    route: str
    median_s: float      # median of the route's own work (children excluded)
    sigma: float         # log-normal shape: p95 = median * exp(1.645 * sigma)
    error_rate: float
    calls: tuple[str, ...] = ()   # keys of downstream routes, called one after the other
    not_found_rate: float = 0.0   # 404 answers (not errors: the client asked for something missing)

    @property
    def key(self) -> str:
        return f"{self.service} {self.method} {self.route}"


def _r(service, method, route, median_ms, sigma, error_rate, calls=(), not_found_rate=0.0) -> Route:
    return Route(service, method, route, median_ms / 1000, sigma, error_rate, tuple(calls), not_found_rate)


ROUTES: tuple[Route, ...] = (
    # catalog: product data, search
    _r("catalog", "GET", "/api/products", 30, 0.45, 0.002),
    _r("catalog", "GET", "/api/products/{id}", 9, 0.35, 0.001, not_found_rate=0.02),
    _r("catalog", "GET", "/api/search", 70, 0.7, 0.004),
    # checkout: cart and orders
    _r("checkout", "GET", "/api/cart", 18, 0.35, 0.002),
    _r("checkout", "POST", "/api/cart/items", 30, 0.4, 0.004, ["catalog GET /api/products/{id}"]),
    _r("checkout", "POST", "/api/checkout", 140, 0.4, 0.01, ["catalog GET /api/products/{id}"]),
    # frontend: what browsers call
    _r("frontend", "GET", "/", 25, 0.4, 0.001, ["catalog GET /api/products"]),
    _r("frontend", "GET", "/products", 30, 0.4, 0.001, ["catalog GET /api/products"]),
    _r("frontend", "GET", "/products/{id}", 20, 0.35, 0.001, ["catalog GET /api/products/{id}"]),
    _r("frontend", "GET", "/search", 20, 0.4, 0.002, ["catalog GET /api/search"]),
    _r("frontend", "GET", "/cart", 15, 0.35, 0.001, ["checkout GET /api/cart"]),
    _r("frontend", "POST", "/cart/items", 20, 0.35, 0.002, ["checkout POST /api/cart/items"]),
    _r("frontend", "POST", "/checkout", 25, 0.4, 0.002, ["checkout POST /api/checkout"]),
)
BY_KEY = {r.key: r for r in ROUTES}
SERVICES = ("frontend", "checkout", "catalog")

# What browsers ask for: frontend route key -> weight.
ENTRY_WEIGHTS: dict[str, float] = {
    "frontend GET /": 20, "frontend GET /products": 20, "frontend GET /products/{id}": 25,
    "frontend GET /search": 10, "frontend GET /cart": 10, "frontend POST /cart/items": 8,
    "frontend POST /checkout": 7,
}

# The incident: the orders database behind checkout is saturated. Every checkout
# request waits for it (log-normal, median 700 ms), and some time out (500).
INCIDENT_SERVICE = "checkout"
INCIDENT_EXTRA_MEDIAN_S = 0.7
INCIDENT_EXTRA_SIGMA = 0.3
INCIDENT_ERROR_RATE = 0.03
CALL_GAP_S = 0.0005          # network time between a client and the server it calls


@dataclass(frozen=True)
class Schedule:
    """Where the demo is at ``t`` seconds after its start."""
    incident_after: float = 60.0
    incident_for: float = 180.0

    def phase_at(self, t: float) -> str:
        if self.incident_for <= 0 or t < self.incident_after:
            return NORMAL
        if t < self.incident_after + self.incident_for:
            return INCIDENT
        return RECOVERED


@dataclass(frozen=True)
class Call:
    """One SERVER span to emit, with the downstream calls made while it ran."""
    route: Route
    duration_s: float
    status_code: int
    error: bool
    children: tuple[tuple[float, "Call"], ...] = ()   # (start offset from this call's start, call)

    def spans(self) -> int:
        return 1 + sum(1 + c.spans() for _, c in self.children)   # each child: its CLIENT span + its tree


class Shop:
    def __init__(self, seed: int = 1):
        self.rng = random.Random(seed)
        self._entries = list(ENTRY_WEIGHTS)
        self._cum = []
        total = 0.0
        for k in self._entries:
            total += ENTRY_WEIGHTS[k]
            self._cum.append(total)

    def request(self, phase: str) -> Call:
        """The plan of one browser request to the frontend."""
        key = self.rng.choices(self._entries, cum_weights=self._cum)[0]
        return self._call(BY_KEY[key], phase)

    def _call(self, route: Route, phase: str) -> Call:
        rng = self.rng
        own = rng.lognormvariate(math.log(route.median_s), route.sigma)
        error_rate = route.error_rate
        if phase == INCIDENT and route.service == INCIDENT_SERVICE:
            own += rng.lognormvariate(math.log(INCIDENT_EXTRA_MEDIAN_S), INCIDENT_EXTRA_SIGMA)
            error_rate = max(error_rate, INCIDENT_ERROR_RATE)
        before = own * 0.4          # parse, authorize ... then call downstream, then render
        children, at, child_failed = [], before, False
        for key in route.calls:
            child = self._call(BY_KEY[key], phase)
            children.append((at + CALL_GAP_S, child))
            at += child.duration_s + 2 * CALL_GAP_S
            child_failed = child_failed or child.error
        duration = at + own - before
        if child_failed or rng.random() < error_rate:
            return Call(route, duration, 500, True, tuple(children))
        if route.not_found_rate and rng.random() < route.not_found_rate:
            return Call(route, duration, 404, False, tuple(children))
        status = 201 if route.method == "POST" and route.route.endswith("/items") else 200
        return Call(route, duration, status, False, tuple(children))


def expected_p95(service: str, phase: str, samples: int = 20_000, seed: int = 7) -> float:
    """The p95 of a service's SERVER spans in a phase, by simulation (for the demo's messages and tests)."""
    shop = Shop(seed)
    durations: list[float] = []

    def walk(c: Call) -> None:
        if c.route.service == service:
            durations.append(c.duration_s)
        for _, child in c.children:
            walk(child)

    while len(durations) < samples:
        walk(shop.request(phase))
    durations.sort()
    return durations[int(0.95 * (len(durations) - 1))]
