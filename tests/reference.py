"""Payloads for the tests: the suite's own fixtures, and the shared reference set for conformance runs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

# Every test that reads a payload runs on the files under tests/fixtures/, written for this suite
# after the standards. The same tests run again, marked `conformance`, on the public reference files
# of the shared folder ($VANTAGE_SHARED_DIR, else ../shared beside the checkout): those runs are
# skipped when the folder is absent, and fail instead when CI=true.

#: The environment variable naming the shared folder (holding ``reference/`` and ``data/``).
SHARED_ENV = "VANTAGE_SHARED_DIR"
CHECKOUT = Path(__file__).resolve().parents[1]
FIXTURES = CHECKOUT / "tests" / "fixtures"

OWN = "own"
REFERENCE = "reference"
#: Both origins, for ``pytest.mark.parametrize`` or fixture params; the reference one is marked.
ORIGINS = [OWN, pytest.param(REFERENCE, marks=pytest.mark.conformance)]

# area -> (folder under tests/fixtures, folder under the shared one, {role: (own file, reference file)})
_AREAS: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "tmf": (
        "tmf",
        "reference/tmf",
        {
            "alarm": ("TMF642_Alarm/alarm.json", "TMF642_Alarm/Alarm.example.json"),
            "clear_alarms": ("TMF642_Alarm/clear_alarms.json", "TMF642_Alarm/ClearAlarms.example.json"),
            "resource": (
                "TMF639_Resource_Inventory/resource.json",
                "TMF639_Resource_Inventory/Resource.example.json",
            ),
            # Not valid JSON, on purpose (the reference one by accident).
            "broken_resource": (
                "TMF639_Resource_Inventory/physical_resource_broken.json",
                "TMF639_Resource_Inventory/PhysicalResource.value.json",
            ),
            "service": (
                "TMF638_Service_Inventory/service.json",
                "TMF638_Service_Inventory/Service.example.json",
            ),
            "trouble_ticket": (
                "TMF621_Trouble_Ticket/trouble_ticket.json",
                "TMF621_Trouble_Ticket/TroubleTicket.example.json",
            ),
            "customer": ("TMF629_Customer/customer.json", "TMF629_Customer/Customer.example.json"),
            "customer_bill": (
                "TMF678_Customer_Bill/customer_bill.json",
                "TMF678_Customer_Bill/CustomerBill.example.json",
            ),
            "usage": ("TMF635_Usage/usage.json", "TMF635_Usage/Usage.example.json"),
            "tmf642_swagger": ("TMF642_Alarm/swagger.json", "TMF642_Alarm/TMF642-Alarm-v4.0.0.swagger.json"),
            "tmf621_swagger": (
                "TMF621_Trouble_Ticket/swagger.json",
                "TMF621_Trouble_Ticket/TMF621-TroubleTicket-v4.0.0.swagger.json",
            ),
            "tmf629_swagger": (
                "TMF629_Customer/swagger.json",
                "TMF629_Customer/TMF629-Customer-v4.0.0.swagger.json",
            ),
            "tmf635_swagger": ("TMF635_Usage/swagger.json", "TMF635_Usage/TMF635-Usage-v4.0.0.swagger.json"),
            "tmf638_swagger": (
                "TMF638_Service_Inventory/swagger.json",
                "TMF638_Service_Inventory/TMF638-ServiceInventory-v4.0.0.swagger.json",
            ),
            "tmf639_swagger": (
                "TMF639_Resource_Inventory/swagger.json",
                "TMF639_Resource_Inventory/TMF639-ResourceInventory-v4.0.0.swagger.json",
            ),
            "tmf678_swagger": (
                "TMF678_Customer_Bill/swagger.json",
                "TMF678_Customer_Bill/TMF678-Customer_Bill-v4.0.0.swagger.json",
            ),
        },
    ),
    "ves": (
        "ves",
        "reference/ves",
        {
            "fault": ("fault.json", "ves7_valid_30_1_1_event.json"),
            # A fault event whose vesEventListenerVersion is the schema's version, not a listener's.
            "invalid_fault": ("fault_bad_listener_version.json", "ves7_invalid_30_1_1_event.json"),
            "fault_batch": ("fault_batch.json", "ves7_batch_valid.json"),
            "measurement": ("measurement.json", "measurement7x.json"),
        },
    ),
    "3gpp-pm": (
        "3gpp-pm",
        "reference/3gpp-pm",
        {
            "r_one_value": ("A20260210.0900+0100-0915+0100_ENB-PRT0417_cell3.xml", "meas_type_and_r.xml"),
            "r_two_values": (
                "A20260210.0900+0100-0915+0100_ENB-PRT0417.xml",
                "meas_type_and_r_many_meas_values.xml",
            ),
            "list_two_values": (
                "A20260210.0900+0100-0915+0100_GNB-PRT0417.xml",
                "meas_types_and_meas_results_many_meas_values.xml",
            ),
            "many_infos": (
                "A20260210.0915+0100-0930+0100_ENB-PRT0417_jobs.xml",
                "lte_meas_results_manyinfo.xml",
            ),
        },
    ),
    "churn": ("churn", "data", {"table": ("telecom_churn_sample.csv", "telecom_churn_bigml_80.csv")}),
}


def shared_dir() -> Path:
    """The shared folder: ``$VANTAGE_SHARED_DIR`` when set, else ``shared`` beside the checkout."""
    configured = os.environ.get(SHARED_ENV)
    return Path(configured).expanduser() if configured else CHECKOUT.parent / "shared"


def require_shared(relative: str) -> Path:
    """``relative`` under the shared folder; when it is missing the test is skipped, or failed in CI."""
    path = shared_dir() / relative
    if not path.exists():
        message = (
            f"conformance run needs the shared reference set: {path} not found. The shared folder is "
            f"${SHARED_ENV} when set, else ../shared beside the checkout; point {SHARED_ENV} at a "
            "folder holding reference/ and data/ to run these tests."
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@dataclass(frozen=True)
class Payloads:
    """Payload files by role under one folder: the suite's own fixtures or the shared reference set."""

    origin: str
    root: Path
    files: Mapping[str, str]

    def path(self, role: str) -> Path:
        return self.root / self.files[role]

    def text(self, role: str) -> str:
        return self.path(role).read_text(encoding="utf-8")

    def json(self, role: str) -> Any:
        """A fresh copy of the payload each call, so a test may change it."""
        return json.loads(self.text(role))


def payloads(area: str, origin: str) -> Payloads:
    """The payloads of ``area`` (tmf, ves, 3gpp-pm, churn) from ``origin`` (OWN or REFERENCE)."""
    own_dir, shared_sub, roles = _AREAS[area]
    if origin == OWN:
        return Payloads(OWN, FIXTURES / own_dir, {role: own for role, (own, _) in roles.items()})
    root = require_shared(shared_sub)
    for _, name in roles.values():
        require_shared(f"{shared_sub}/{name}")
    return Payloads(REFERENCE, root, {role: ref for role, (_, ref) in roles.items()})
