"""The simulated operator's static world: geography, network, accounts and subscribers as arrays."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

# Static attributes (tenure, contract ends) are dated from this fixed point, not from the clock,
# so a subscriber re-emitted in live mode carries exactly the values it had in the first run.
REFERENCE = datetime(2026, 1, 1)

ROW_CHUNK = 100_000

# (town, region, lat, lon, weight): a plausible country (Portugal) to scatter sites around.
TOWNS: tuple[tuple[str, str, float, float, float], ...] = (
    ("Porto", "Norte", 41.15, -8.61, 10.0),
    ("Braga", "Norte", 41.55, -8.42, 4.0),
    ("Guimaraes", "Norte", 41.44, -8.29, 3.0),
    ("Viana do Castelo", "Norte", 41.69, -8.83, 2.0),
    ("Vila Real", "Norte", 41.30, -7.74, 1.5),
    ("Braganca", "Norte", 41.81, -6.76, 1.0),
    ("Coimbra", "Centro", 40.21, -8.43, 4.0),
    ("Aveiro", "Centro", 40.64, -8.65, 3.0),
    ("Viseu", "Centro", 40.66, -7.91, 2.5),
    ("Leiria", "Centro", 39.74, -8.81, 3.0),
    ("Guarda", "Centro", 40.54, -7.27, 1.0),
    ("Castelo Branco", "Centro", 39.82, -7.49, 1.2),
    ("Lisboa", "Lisboa", 38.72, -9.14, 14.0),
    ("Sintra", "Lisboa", 38.80, -9.38, 4.0),
    ("Cascais", "Lisboa", 38.70, -9.42, 3.0),
    ("Almada", "Lisboa", 38.68, -9.16, 3.0),
    ("Amadora", "Lisboa", 38.76, -9.23, 3.0),
    ("Setubal", "Lisboa", 38.52, -8.89, 3.0),
    ("Evora", "Alentejo", 38.57, -7.91, 2.0),
    ("Beja", "Alentejo", 38.02, -7.86, 1.0),
    ("Portalegre", "Alentejo", 39.29, -7.43, 0.8),
    ("Santarem", "Alentejo", 39.24, -8.69, 1.5),
    ("Faro", "Algarve", 37.02, -7.93, 2.5),
    ("Portimao", "Algarve", 37.14, -8.54, 2.0),
    ("Lagos", "Algarve", 37.10, -8.67, 1.2),
    ("Albufeira", "Algarve", 37.09, -8.25, 1.5),
    ("Tavira", "Algarve", 37.13, -7.65, 0.8),
)
REGIONS = ("Norte", "Centro", "Lisboa", "Alentejo", "Algarve")

RESOURCE_KINDS = ("ran_node", "power", "transport", "router")
RAN, POWER, TRANSPORT, ROUTER = range(4)
SITES_PER_TRANSPORT = 8
TRANSPORTS_PER_ROUTER = 25

SEGMENTS = ("enterprise", "smb", "consumer")
ENTERPRISE, SMB, CONSUMER = range(3)
SEGMENT_SHARE = (0.10, 0.12, 0.78)

# (plan, segment, mean ARPU, monthly data GB, voice minutes, SMS)
PLANS: tuple[tuple[str, int, float, float, float, float], ...] = (
    ("Corporate Fleet 50GB", ENTERPRISE, 42.0, 22.0, 650.0, 40.0),
    ("IoT Connect", ENTERPRISE, 4.0, 0.4, 0.0, 30.0),
    ("Business Flex 30GB", SMB, 31.0, 16.0, 520.0, 60.0),
    ("Business Unlimited", SMB, 48.0, 40.0, 700.0, 50.0),
    ("Prepaid Basic", CONSUMER, 9.5, 3.0, 120.0, 90.0),
    ("Smart 20GB", CONSUMER, 21.0, 12.0, 260.0, 70.0),
    ("Family Share 60GB", CONSUMER, 27.0, 18.0, 300.0, 60.0),
    ("Unlimited 5G", CONSUMER, 39.0, 45.0, 380.0, 40.0),
)
PLAN_WEIGHTS = {
    ENTERPRISE: (0.85, 0.15),
    SMB: (0.7, 0.3),
    CONSUMER: (0.3, 0.35, 0.2, 0.15),
}

FIRST_NAMES = (
    "Ana",
    "Joao",
    "Maria",
    "Pedro",
    "Sofia",
    "Tiago",
    "Ines",
    "Rui",
    "Beatriz",
    "Miguel",
    "Carla",
    "Nuno",
    "Rita",
    "Andre",
    "Marta",
    "Luis",
    "Helena",
    "Paulo",
    "Catarina",
    "Bruno",
    "Daniel",
    "Laura",
    "Ricardo",
    "Teresa",
    "Filipe",
    "Joana",
    "Hugo",
    "Claudia",
    "Diogo",
    "Sara",
)
LAST_NAMES = (
    "Silva",
    "Santos",
    "Ferreira",
    "Pereira",
    "Oliveira",
    "Costa",
    "Rodrigues",
    "Martins",
    "Jesus",
    "Sousa",
    "Fernandes",
    "Goncalves",
    "Gomes",
    "Lopes",
    "Marques",
    "Alves",
    "Almeida",
    "Ribeiro",
    "Pinto",
    "Carvalho",
    "Teixeira",
    "Moreira",
    "Correia",
    "Mendes",
    "Nunes",
    "Soares",
    "Vieira",
)
BUSINESS_NOUNS = (
    "Bakery",
    "Dental Clinic",
    "Auto Repair",
    "Architects",
    "Cafe",
    "Pharmacy",
    "Plumbing",
    "Travel",
    "Bookshop",
    "Florist",
    "Accounting",
    "Fitness",
    "Electrics",
    "Optics",
    "Wines",
)
ENTERPRISE_PREFIXES = (
    "Atlantic",
    "Iberia",
    "Lusitania",
    "Tejo",
    "Douro",
    "Norte",
    "Meridian",
    "Oceano",
    "Alto",
    "Costa",
    "Sol",
    "Mondego",
    "Estrela",
    "Minho",
    "Sado",
)
ENTERPRISE_SECTORS = (
    "Logistics",
    "Health",
    "Retail",
    "Energy",
    "Bank",
    "Insurance",
    "Foods",
    "Construction",
    "Telecom Services",
    "Hotels",
    "Transport",
    "Pharma",
    "Engineering",
    "Media",
    "Utilities",
)
ENTERPRISE_SUFFIXES = ("SA", "Group", "Holdings", "SGPS")
ACCOUNT_MANAGERS = (
    "Helena Duarte",
    "Ricardo Matos",
    "Paula Reis",
    "Vasco Leal",
    "Cristina Faria",
    "Jorge Antunes",
    "Monica Braga",
    "Fernando Cruz",
    "Isabel Lima",
    "Goncalo Pires",
    "Sandra Rocha",
    "Artur Viana",
)
# Contact addresses: a street of the account's town, its number and the town's postcode area.
STREETS = (
    "Rua Augusta",
    "Rua Direita",
    "Rua de Santo Antonio",
    "Rua da Liberdade",
    "Avenida da Republica",
    "Avenida Central",
    "Rua do Comercio",
    "Rua 25 de Abril",
    "Travessa do Forno",
    "Largo da Igreja",
    "Rua das Flores",
    "Rua Dom Afonso Henriques",
    "Avenida Marginal",
    "Rua de Camoes",
    "Rua do Mercado",
)
POSTCODE_AREAS = {
    "Porto": 4000, "Braga": 4700, "Guimaraes": 4800, "Viana do Castelo": 4900, "Vila Real": 5000,
    "Braganca": 5300, "Coimbra": 3000, "Aveiro": 3800, "Viseu": 3500, "Leiria": 2400, "Guarda": 6300,
    "Castelo Branco": 6000, "Lisboa": 1100, "Sintra": 2710, "Cascais": 2750, "Almada": 2800,
    "Amadora": 2700, "Setubal": 2900, "Evora": 7000, "Beja": 7800, "Portalegre": 7300,
    "Santarem": 2000, "Faro": 8000, "Portimao": 8500, "Lagos": 8600, "Albufeira": 8200, "Tavira": 8800,
}  # fmt: skip
RAN_VENDORS = ("Ericsson", "Nokia", "Huawei", "Samsung")
POWER_VENDORS = ("Eltek", "Delta", "Vertiv")
TRANSPORT_VENDORS = ("Ceragon", "Nokia", "Huawei", "Ericsson")
ROUTER_VENDORS = ("Cisco", "Juniper", "Nokia")
ACCOUNT_SERVICES = ("Private APN", "IoT Fleet", "Business Voice", "Fixed Wireless Access")


def tag_id(tag: str) -> int:
    """A stable integer for a stream tag (Python's ``hash`` is salted per process)."""
    return zlib.crc32(tag.encode())


def rng_for(seed: int, tag: str, *index: int) -> np.random.Generator:
    """An independent generator for (seed, tag, index...): chunks never share a stream."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, tag_id(tag), *(i & 0xFFFFFFFF for i in index)])
    )


def _strs(prefix: str, n: int, width: int, start: int = 0) -> pd.Series:
    """``prefix`` followed by zero-padded numbers, as a pandas string Series."""
    return prefix + pd.Series(np.arange(start, start + n)).astype(str).str.zfill(width)


def _pick(options: tuple[str, ...], idx: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(options, dtype=object)[idx], dtype="str")


@dataclass
class World:
    """Everything that does not change with time, as numpy arrays indexed by position."""

    seed: int
    n_subscribers: int
    # geography
    n_sites: int
    site_town: np.ndarray
    site_region: np.ndarray
    site_lat: np.ndarray
    site_lon: np.ndarray
    site_ids: pd.Series
    site_names: pd.Series
    # cells: three per site, cell c on site c // 3
    n_cells: int
    cell_ids: pd.Series
    cell_5g: np.ndarray
    cell_load: np.ndarray
    cell_subs: np.ndarray
    # resources: ran nodes, power units, transports, routers; each covers a contiguous cell range
    res_ids: pd.Series
    res_names: pd.Series
    res_kind: np.ndarray
    res_site: np.ndarray
    res_cell_lo: np.ndarray
    res_cell_hi: np.ndarray
    transport_site_lo: np.ndarray
    router_transport_lo: np.ndarray
    # accounts and subscribers (subscribers of one account are contiguous)
    n_accounts: int
    acc_segment: np.ndarray
    acc_vip: np.ndarray
    acc_base_site: np.ndarray
    acc_ids: pd.Series
    sub_account: np.ndarray
    sub_plan: np.ndarray
    sub_arpu: np.ndarray
    sub_home_cell: np.ndarray
    sub_ids: pd.Series
    # subscriber -> serving cells (CSR, sorted by subscriber)
    sc_sub: np.ndarray
    sc_cell: np.ndarray
    sc_share: np.ndarray
    sc_indptr: np.ndarray

    @property
    def n_resources(self) -> int:
        return len(self.res_kind)

    def site_place(self, site: int) -> str:
        return TOWNS[int(self.site_town[site])][0]


def build_world(seed: int, n_subscribers: int, subscribers_per_cell: int) -> World:
    """Build the static world; a pure function of its arguments."""
    rng = rng_for(seed, "world")
    n_cells_target = max(3, round(n_subscribers / subscribers_per_cell))
    n_sites = max(1, -(-n_cells_target // 3))
    n_cells = n_sites * 3

    # Sites: assigned to towns by weight, ordered by region then town so that neighbouring
    # indices are neighbours on the map (transport groups and routers take contiguous ranges).
    weights = np.array([t[4] for t in TOWNS])
    town = rng.choice(len(TOWNS), size=n_sites, p=weights / weights.sum())
    town_region = np.array([REGIONS.index(t[1]) for t in TOWNS])
    order = np.lexsort((town, town_region[town]))
    town = town[order]
    region = town_region[town]
    spread = 0.025 * np.sqrt(weights[town])
    lat = np.round(np.array([t[2] for t in TOWNS])[town] + rng.normal(0, 1, n_sites) * spread, 5)
    lon = np.round(np.array([t[3] for t in TOWNS])[town] + rng.normal(0, 1, n_sites) * spread, 5)
    site_ids = _strs("site-", n_sites, 5)
    town_names = pd.Series(np.asarray([t[0] for t in TOWNS], dtype=object)[town], dtype="str")
    site_names = town_names + " " + pd.Series(np.arange(n_sites)).astype(str).str.zfill(4)

    urban = weights[town] >= 3.0
    site_5g = rng.random(n_sites) < np.where(urban, 0.45, 0.15)
    cell_5g = np.repeat(site_5g, 3)
    cell_ids = _strs("cell-", n_cells, 6)
    cell_load = rng.uniform(0.45, 1.15, n_cells) * np.where(np.repeat(urban, 3), 1.1, 0.85)

    # Resources.
    transport_site_lo: list[int] = []
    for r in range(len(REGIONS)):
        idx = np.flatnonzero(region == r)
        if len(idx):
            transport_site_lo.extend(range(int(idx[0]), int(idx[-1]) + 1, SITES_PER_TRANSPORT))
    t_lo = np.asarray(transport_site_lo, dtype=np.int64)
    t_hi = np.append(t_lo[1:], n_sites)
    t_hi = np.minimum(t_hi, np.array([np.flatnonzero(region == region[s])[-1] + 1 for s in t_lo]))
    n_tx = len(t_lo)
    router_lo: list[int] = []
    tx_region = region[t_lo]
    for r in range(len(REGIONS)):
        idx = np.flatnonzero(tx_region == r)
        if len(idx):
            router_lo.extend(range(int(idx[0]), int(idx[-1]) + 1, TRANSPORTS_PER_ROUTER))
    r_lo = np.asarray(router_lo, dtype=np.int64)
    r_hi = np.append(r_lo[1:], n_tx)
    r_hi = np.minimum(r_hi, np.array([np.flatnonzero(tx_region == tx_region[t])[-1] + 1 for t in r_lo]))
    n_rt = len(r_lo)

    sites_ar = np.arange(n_sites)
    res_kind = np.concatenate(
        [np.full(n_sites, RAN), np.full(n_sites, POWER), np.full(n_tx, TRANSPORT), np.full(n_rt, ROUTER)]
    )
    res_site = np.concatenate([sites_ar, sites_ar, t_lo, t_lo[r_lo]])
    res_cell_lo = np.concatenate([sites_ar * 3, sites_ar * 3, t_lo * 3, t_lo[r_lo] * 3])
    res_cell_hi = np.concatenate([sites_ar * 3 + 3, sites_ar * 3 + 3, t_hi * 3, t_hi[r_hi - 1] * 3])
    res_ids = pd.concat(
        [
            _strs("ran-", n_sites, 5),
            _strs("pwr-", n_sites, 5),
            _strs("tx-", n_tx, 4),
            _strs("rtr-", n_rt, 3),
        ],
        ignore_index=True,
    )
    ran_label = pd.Series(np.where(site_5g, " gNodeB", " eNodeB"), dtype="str")
    res_names = pd.concat(
        [
            site_names + ran_label,
            site_names + " power plant",
            site_names.iloc[t_lo].reset_index(drop=True) + " transport hub",
            site_names.iloc[t_lo[r_lo]].reset_index(drop=True) + " aggregation router",
        ],
        ignore_index=True,
    )

    # Accounts: enterprise, then smb, then consumer; each a contiguous block of subscribers.
    sizes_parts = []
    seg_parts = []
    targets = np.floor(np.array(SEGMENT_SHARE) * n_subscribers).astype(np.int64)
    targets[CONSUMER] = n_subscribers - targets[ENTERPRISE] - targets[SMB]
    for seg, target in enumerate(targets):
        if target <= 0:
            continue
        if seg == ENTERPRISE:
            cap = max(20, min(2000, n_subscribers // 40))
            draw = np.clip(rng.lognormal(np.log(60), 0.9, target // 10 + 10), 10, cap).astype(np.int64)
        elif seg == SMB:
            draw = np.clip(rng.geometric(0.15, target // 2 + 10), 2, 40)
        else:
            draw = np.clip(rng.geometric(0.6, target + 10), 1, 5)
        cs = np.cumsum(draw)
        k = int(np.searchsorted(cs, target)) + 1
        draw = draw[:k].copy()
        draw[-1] -= int(cs[k - 1] - target)
        draw = draw[draw > 0]
        sizes_parts.append(draw)
        seg_parts.append(np.full(len(draw), seg))
    acc_sizes = np.concatenate(sizes_parts)
    acc_segment = np.concatenate(seg_parts)
    n_accounts = len(acc_sizes)
    vip_p = np.array([0.25, 0.04, 0.005])[acc_segment]
    acc_vip = rng.random(n_accounts) < vip_p
    acc_base_site = rng.integers(0, n_sites, n_accounts)
    acc_ids = _strs("acc-", n_accounts, 7)

    sub_account = np.repeat(np.arange(n_accounts), acc_sizes)
    sub_segment = acc_segment[sub_account]
    sub_plan = np.zeros(n_subscribers, dtype=np.int64)
    u = rng.random(n_subscribers)
    for seg, w in PLAN_WEIGHTS.items():
        plan_idx = [i for i, p in enumerate(PLANS) if p[1] == seg]
        m = sub_segment == seg
        sub_plan[m] = np.asarray(plan_idx)[np.searchsorted(np.cumsum(w), u[m] * sum(w), side="right")]
    plan_arpu = np.array([p[2] for p in PLANS])
    sub_arpu = np.round(plan_arpu[sub_plan] * rng.uniform(0.85, 1.15, n_subscribers), 2)

    # Home cells: business lines cluster at their account's base site.
    home = rng.integers(0, n_cells, n_subscribers)
    at_base = (sub_segment != CONSUMER) & (rng.random(n_subscribers) < 0.6)
    home[at_base] = acc_base_site[sub_account[at_base]] * 3 + rng.integers(0, 3, int(at_base.sum()))
    cell_subs = np.bincount(home, minlength=n_cells)

    # Serving cells: home, sometimes another sector of the site, sometimes a neighbour site.
    n_serving = 1 + (rng.random(n_subscribers) < 0.6) + (rng.random(n_subscribers) < 0.25)
    s1 = np.where(n_serving == 1, 1.0, rng.uniform(0.5, 0.9, n_subscribers))
    rest = 1.0 - s1
    s2 = np.where(n_serving == 3, rest * rng.uniform(0.4, 0.8, n_subscribers), rest)
    s3 = 1.0 - s1 - s2
    site = home // 3
    c2 = site * 3 + (home % 3 + 1) % 3
    nb = np.clip(site + np.where(rng.random(n_subscribers) < 0.5, -1, 1), 0, n_sites - 1)
    nb = np.where(nb == site, (site + 1) % n_sites, nb)
    c3 = nb * 3 + rng.integers(0, 3, n_subscribers)
    subs = np.arange(n_subscribers)
    m2 = n_serving >= 2
    m3 = n_serving == 3
    sc_sub = np.concatenate([subs, subs[m2], subs[m3]])
    sc_cell = np.concatenate([home, c2[m2], c3[m3]])
    sc_share = np.concatenate([s1, s2[m2], s3[m3]])
    order = np.argsort(sc_sub, kind="stable")
    sc_sub, sc_cell, sc_share = sc_sub[order], sc_cell[order], sc_share[order]
    sc_indptr = np.concatenate([[0], np.cumsum(np.bincount(sc_sub, minlength=n_subscribers))])

    return World(
        seed=seed,
        n_subscribers=n_subscribers,
        n_sites=n_sites,
        site_town=town,
        site_region=region,
        site_lat=lat,
        site_lon=lon,
        site_ids=site_ids,
        site_names=site_names,
        n_cells=n_cells,
        cell_ids=cell_ids,
        cell_5g=cell_5g,
        cell_load=cell_load,
        cell_subs=cell_subs,
        res_ids=res_ids,
        res_names=res_names,
        res_kind=res_kind,
        res_site=res_site,
        res_cell_lo=res_cell_lo,
        res_cell_hi=res_cell_hi,
        transport_site_lo=t_lo,
        router_transport_lo=r_lo,
        n_accounts=n_accounts,
        acc_segment=acc_segment,
        acc_vip=acc_vip,
        acc_base_site=acc_base_site,
        acc_ids=acc_ids,
        sub_account=sub_account,
        sub_plan=sub_plan,
        sub_arpu=sub_arpu,
        sub_home_cell=home,
        sub_ids=_strs("sub-", n_subscribers, 7),
        sc_sub=sc_sub.astype(np.int64),
        sc_cell=sc_cell.astype(np.int64),
        sc_share=sc_share,
        sc_indptr=sc_indptr,
    )


# --- Records ------------------------------------------------------------------------------------


def _frame(source: str, columns: dict[str, object]) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    df.insert(0, "source", source)
    df["source"] = df["source"].astype("str")
    return df


def topology_frames(w: World, source: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """Regions, sites, cells, resources and the edges resource -> resource -> cell -> service."""
    yield (
        "regions",
        _frame(
            source,
            {
                "id": pd.Series([f"region-{r.lower()}" for r in REGIONS], dtype="str"),
                "name": pd.Series(list(REGIONS), dtype="str"),
            },
        ),
    )
    region_ids = pd.Series([f"region-{r.lower()}" for r in REGIONS], dtype="str")
    yield (
        "sites",
        _frame(
            source,
            {
                "id": w.site_ids,
                "region_id": region_ids.iloc[w.site_region].reset_index(drop=True),
                "name": w.site_names,
                "lat": w.site_lat,
                "lon": w.site_lon,
            },
        ),
    )
    cell_site = np.arange(w.n_cells) // 3
    sector = pd.Series(np.arange(w.n_cells) % 3 + 1).astype(str)
    tech = np.where(w.cell_5g, "5g", "4g")
    bands_4g = np.array(["B3 1800", "B20 800", "B7 2600"], dtype=object)
    band = np.where(w.cell_5g, "n78 3500", bands_4g[np.arange(w.n_cells) % 3])
    yield (
        "cells",
        _frame(
            source,
            {
                "id": w.cell_ids,
                "site_id": w.site_ids.iloc[cell_site].reset_index(drop=True),
                "name": w.site_names.iloc[cell_site].reset_index(drop=True)
                + pd.Series(np.where(w.cell_5g, " NR S", " LTE S"), dtype="str")
                + sector,
                "technology": pd.Series(tech, dtype="str"),
                "band": pd.Series(band, dtype="str"),
            },
        ),
    )
    vendors = np.empty(w.n_resources, dtype=object)
    region = w.site_region[w.res_site]
    for kind, names in (
        (RAN, RAN_VENDORS),
        (POWER, POWER_VENDORS),
        (TRANSPORT, TRANSPORT_VENDORS),
        (ROUTER, ROUTER_VENDORS),
    ):
        m = w.res_kind == kind
        vendors[m] = np.asarray(names, dtype=object)[region[m] % len(names)]
    yield (
        "resources",
        _frame(
            source,
            {
                "id": w.res_ids,
                "site_id": w.site_ids.iloc[w.res_site].reset_index(drop=True),
                "name": w.res_names,
                "kind": pd.Series(np.asarray(RESOURCE_KINDS, dtype=object)[w.res_kind], dtype="str"),
                "vendor": pd.Series(vendors, dtype="str"),
            },
        ),
    )
    yield "topology_edges", _edges(w, source)


def _edges(w: World, source: str) -> pd.DataFrame:
    s = w.n_sites
    n_tx = len(w.transport_site_lo)
    tx_base = 2 * s
    rt_base = tx_base + n_tx
    parts: list[tuple[np.ndarray, np.ndarray, str]] = []
    # router -> transport
    t_idx = np.arange(n_tx)
    router_of_tx = np.searchsorted(w.router_transport_lo, t_idx, side="right") - 1
    parts.append((rt_base + router_of_tx, tx_base + t_idx, "resource"))
    # transport -> ran node
    sites = np.arange(s)
    tx_of_site = np.searchsorted(w.transport_site_lo, sites, side="right") - 1
    parts.append((tx_base + tx_of_site, sites, "resource"))
    # power -> ran node
    parts.append((s + sites, sites, "resource"))
    # ran node -> cell
    cells = np.arange(w.n_cells)
    parts.append((cells // 3, cells, "cell"))
    frames = []
    for parent, child, child_type in parts:
        frames.append(
            pd.DataFrame(
                {
                    "parent_type": "resource",
                    "parent_id": w.res_ids.iloc[parent].reset_index(drop=True),
                    "child_type": child_type,
                    "child_id": (w.res_ids if child_type == "resource" else w.cell_ids)
                    .iloc[child]
                    .reset_index(drop=True),
                }
            )
        )
    svc = account_service_cells(w)
    frames.append(
        pd.DataFrame(
            {
                "parent_type": "cell",
                "parent_id": w.cell_ids.iloc[svc["cell"].to_numpy()].reset_index(drop=True),
                "child_type": "service",
                "child_id": svc["service_id"].reset_index(drop=True),
            }
        )
    )
    df = pd.concat(frames, ignore_index=True)
    df.insert(0, "source", source)
    return df.astype({c: "str" for c in ("source", "parent_type", "child_type")})


def account_services(w: World) -> pd.DataFrame:
    """Account-level services of business accounts: enterprise 2-4, smb 1."""
    rng = rng_for(w.seed, "account-services")
    biz = np.flatnonzero(w.acc_segment != CONSUMER)
    count = np.where(w.acc_segment[biz] == ENTERPRISE, rng.integers(2, 5, len(biz)), 1)
    acc = np.repeat(biz, count)
    k = np.arange(len(acc)) - np.repeat(np.cumsum(count) - count, count)
    kind_idx = np.where(w.acc_segment[acc] == ENTERPRISE, k % len(ACCOUNT_SERVICES), 3)
    return pd.DataFrame(
        {
            "account": acc,
            "service_id": w.acc_ids.iloc[acc].reset_index(drop=True).str.replace("acc-", "asvc-")
            + "-"
            + pd.Series(k).astype(str),
            "kind_idx": kind_idx,
        }
    )


def account_service_cells(w: World) -> pd.DataFrame:
    """(service, cell) pairs: every home cell of the account's lines feeds its services."""
    svc = account_services(w)
    biz_subs = np.flatnonzero(w.acc_segment[w.sub_account] != CONSUMER)
    pairs = pd.DataFrame({"account": w.sub_account[biz_subs], "cell": w.sub_home_cell[biz_subs]})
    pairs = pairs.drop_duplicates()
    return svc.merge(pairs, on="account")[["service_id", "cell"]]


def customer_frames(w: World, source: str, churned: np.ndarray) -> Iterator[tuple[str, pd.DataFrame]]:
    """Accounts, subscribers, subscriber_cells and services in chunks of about ``ROW_CHUNK`` rows."""
    for lo in range(0, w.n_accounts, ROW_CHUNK):
        yield "accounts", _accounts(w, source, lo, min(lo + ROW_CHUNK, w.n_accounts))
    for lo in range(0, w.n_subscribers, ROW_CHUNK):
        idx = np.arange(lo, min(lo + ROW_CHUNK, w.n_subscribers))
        yield "subscribers", subscriber_frame(w, source, idx, churned[idx])
    for lo in range(0, len(w.sc_sub), ROW_CHUNK):
        sl = slice(lo, min(lo + ROW_CHUNK, len(w.sc_sub)))
        yield (
            "subscriber_cells",
            _frame(
                source,
                {
                    "subscriber_id": w.sub_ids.iloc[w.sc_sub[sl]].reset_index(drop=True),
                    "cell_id": w.cell_ids.iloc[w.sc_cell[sl]].reset_index(drop=True),
                    "share": w.sc_share[sl],
                },
            ),
        )
    plan_names = np.asarray([p[0] for p in PLANS], dtype=object)
    for lo in range(0, w.n_subscribers, ROW_CHUNK):
        idx = np.arange(lo, min(lo + ROW_CHUNK, w.n_subscribers))
        yield (
            "services",
            _frame(
                source,
                {
                    "id": w.sub_ids.iloc[idx].reset_index(drop=True).str.replace("sub-", "svc-"),
                    "subscriber_id": w.sub_ids.iloc[idx].reset_index(drop=True),
                    "account_id": w.acc_ids.iloc[w.sub_account[idx]].reset_index(drop=True),
                    "name": "Mobile line " + pd.Series(plan_names[w.sub_plan[idx]], dtype="str"),
                    "kind": "mobile",
                    "status": "active",
                },
            ).astype({"kind": "str", "status": "str"}),
        )
    svc = account_services(w)
    yield (
        "services",
        _frame(
            source,
            {
                "id": svc["service_id"],
                "subscriber_id": pd.Series([None] * len(svc), dtype=object),
                "account_id": w.acc_ids.iloc[svc["account"].to_numpy()].reset_index(drop=True),
                "name": pd.Series(
                    np.asarray(ACCOUNT_SERVICES, dtype=object)[svc["kind_idx"].to_numpy()], dtype="str"
                )
                + " for "
                + _account_names(w, svc["account"].to_numpy()),
                "kind": pd.Series(
                    np.asarray(["private_apn", "iot", "voice", "fwa"], dtype=object)[
                        svc["kind_idx"].to_numpy()
                    ],
                    dtype="str",
                ),
                "status": pd.Series(["active"] * len(svc), dtype="str"),
            },
        ),
    )


def _person(w: World, acc: np.ndarray) -> tuple[pd.Series, pd.Series]:
    rng_first = (acc * 7 + w.seed) % len(FIRST_NAMES)
    rng_last = (acc * 13 + w.seed * 3 + acc // 29) % len(LAST_NAMES)
    return _pick(FIRST_NAMES, rng_first), _pick(LAST_NAMES, rng_last)


def _account_names(w: World, acc: np.ndarray) -> pd.Series:
    first, last = _person(w, acc)
    seg = w.acc_segment[acc]
    smb = last + " " + _pick(BUSINESS_NOUNS, (acc * 5 + w.seed) % len(BUSINESS_NOUNS))
    ent = (
        _pick(ENTERPRISE_PREFIXES, (acc * 3 + w.seed) % len(ENTERPRISE_PREFIXES))
        + " "
        + _pick(ENTERPRISE_SECTORS, (acc * 11 + w.seed) % len(ENTERPRISE_SECTORS))
        + " "
        + _pick(ENTERPRISE_SUFFIXES, acc % len(ENTERPRISE_SUFFIXES))
    )
    consumer = first + " " + last
    out = consumer.where(seg == CONSUMER, smb.where(seg == SMB, ent))
    return out.reset_index(drop=True)


def _address(w: World, acc: np.ndarray) -> pd.Series:
    """``Rua Augusta 12, 1100-427 Lisboa``: a street in the town of the account's base site."""
    towns = np.asarray([t[0] for t in TOWNS], dtype=object)[w.site_town[w.acc_base_site[acc]]]
    area = np.asarray([POSTCODE_AREAS[t] for t in towns], dtype=np.int64) + (acc * 7 + w.seed) % 100
    return (
        _pick(STREETS, (acc * 19 + w.seed) % len(STREETS))
        + " "
        + pd.Series((acc * 37 + w.seed) % 240 + 1).astype(str)
        + ", "
        + pd.Series(area).astype(str)
        + "-"
        + pd.Series((acc * 131 + w.seed) % 1000).astype(str).str.zfill(3)
        + " "
        + pd.Series(towns, dtype="str")
    )


def contact_emails(w: World, acc: np.ndarray) -> pd.Series:
    """The contact e-mail of accounts ``acc``: ``first.last<account>@example.net``, lower case."""
    first, last = _person(w, acc)
    return (first + "." + last + pd.Series(acc).astype(str) + "@example.net").str.lower()


def account_of_email(w: World, email: str) -> int | None:
    """The account whose contact e-mail is ``email`` (any case), or None."""
    m = re.fullmatch(r"[a-z]+\.[a-z]+(\d+)@example\.net", email.strip().lower())
    if m is None:
        return None
    acc = int(m.group(1))
    if acc >= w.n_accounts or contact_emails(w, np.array([acc])).iloc[0] != email.strip().lower():
        return None
    return acc


def _accounts(w: World, source: str, lo: int, hi: int) -> pd.DataFrame:
    acc = np.arange(lo, hi)
    rng = rng_for(w.seed, "accounts", lo)
    seg = w.acc_segment[acc]
    vip = w.acc_vip[acc]
    n = len(acc)
    managed = (seg != CONSUMER) | vip
    sla = np.where(
        seg == ENTERPRISE,
        np.array([120, 240, 240, 480])[rng.integers(0, 4, n)],
        np.where(seg == SMB, np.array([480, 1440])[rng.integers(0, 2, n)], 720),
    ).astype(float)
    penalty = np.where(
        seg == ENTERPRISE,
        np.round(np.clip(rng.lognormal(np.log(700), 0.8, n), 100, 10000), -1),
        np.where(seg == SMB, np.round(rng.uniform(20, 150, n)), 0.0),
    )
    penalty = np.where(vip & (seg == ENTERPRISE), penalty * 2, penalty)
    contract_days = rng.integers(30, 900, n)
    contract_end = pd.Series(
        pd.Timestamp(REFERENCE).normalize() + pd.to_timedelta(contract_days, unit="D")
    ).dt.date.astype(object)
    contract_end = contract_end.where(managed | (rng.random(n) < 0.5), None)
    first, last = _person(w, acc)
    manager = (
        _pick(ACCOUNT_MANAGERS, (acc * 17 + w.seed) % len(ACCOUNT_MANAGERS))
        .astype(object)
        .where(managed, None)
    )
    phone = "+351 " + pd.Series(rng.integers(910_000_000, 969_999_999, n)).astype(str)
    address = _address(w, acc)
    email = contact_emails(w, acc)
    return _frame(
        source,
        {
            "id": w.acc_ids.iloc[acc].reset_index(drop=True),
            "name": _account_names(w, acc),
            "segment": pd.Series(np.asarray(SEGMENTS, dtype=object)[seg], dtype="str"),
            "vip": vip,
            "account_manager": manager,
            "sla_restore_minutes": pd.Series(sla.astype(int), dtype=object).where(managed, None),
            "penalty_per_hour": pd.Series(penalty, dtype=object).where(managed, None),
            "contract_end": contract_end,
            "contact_name": first + " " + last,
            "contact_email": email,
            "contact_phone": phone,
            "contact_address": address,
        },
    )


MAX_TENURE_DAYS = 30 * 365

# A line's MSISDN is +3519 and eight digits, (line * step + seed * 31) mod span above the base:
# the step is prime to the span, so every line of a world has its own number and it can be inverted.
MSISDN_COUNTRY = "3519"
MSISDN_STEP = 7919
MSISDN_SPAN = 90_000_000
MSISDN_BASE = 10_000_000


def msisdn_numbers(w: World, idx: np.ndarray) -> np.ndarray:
    """The eight digits after ``+3519`` of the MSISDNs of lines ``idx``."""
    return np.asarray((idx * MSISDN_STEP + w.seed * 31) % MSISDN_SPAN + MSISDN_BASE)


def line_of_msisdn(w: World, number: str) -> int | None:
    """The line whose MSISDN ``number`` is, in any formatting (``+351 912 345 678``, ``00351...``,
    or the nine national digits), or None."""
    digits = re.sub(r"\D", "", number)
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == 9:
        digits = MSISDN_COUNTRY[:3] + digits
    if len(digits) != 12 or not digits.startswith(MSISDN_COUNTRY):
        return None
    rest = int(digits[4:]) - MSISDN_BASE
    if not 0 <= rest < MSISDN_SPAN:
        return None
    line = (rest - w.seed * 31) * pow(MSISDN_STEP, -1, MSISDN_SPAN) % MSISDN_SPAN
    return line if line < w.n_subscribers else None


def subscriber_frame(w: World, source: str, idx: np.ndarray, churned: np.ndarray) -> pd.DataFrame:
    """Subscriber records for positions ``idx`` with their current status."""
    rng = rng_for(w.seed, "tenure")
    tenure_days = rng.exponential(1100, w.n_subscribers)[idx]  # same draw for any idx subset
    # The exponential's far tail (a few lines per million) would date a line before mobile networks
    # (and before what ingest accepts): nobody has been a subscriber for more than 30 years.
    tenure_days = np.minimum(tenure_days, MAX_TENURE_DAYS)
    activated = pd.Timestamp(REFERENCE) - pd.to_timedelta(np.round(tenure_days * 86400), unit="s")
    mobile_prefix = msisdn_numbers(w, idx)
    plan_names = np.asarray([p[0] for p in PLANS], dtype=object)
    return _frame(
        source,
        {
            "id": w.sub_ids.iloc[idx].reset_index(drop=True),
            "account_id": w.acc_ids.iloc[w.sub_account[idx]].reset_index(drop=True),
            "msisdn": "+3519" + pd.Series(mobile_prefix).astype(str),
            "plan": pd.Series(plan_names[w.sub_plan[idx]], dtype="str"),
            "arpu": w.sub_arpu[idx],
            "activated_at": pd.Series(activated).astype("datetime64[us]").to_numpy(),
            "status": pd.Series(np.where(churned, "churned", "active"), dtype="str"),
            "home_cell_id": w.cell_ids.iloc[w.sub_home_cell[idx]].reset_index(drop=True),
        },
    )


def day_start(day: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(days=day)


def month_start(d: date) -> date:
    return d.replace(day=1)
