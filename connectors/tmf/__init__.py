"""TM Forum Open API connectors: alarms, inventory, tickets, customers, bills and usage."""

from connectors.tmf._base import MappingError, TmfConnector, TmfOptions, TmfPushConnector, TmfPushOptions
from connectors.tmf.alarm import Tmf642Connector, Tmf642Options
from connectors.tmf.billing import Tmf635Connector, Tmf635Options, Tmf678Connector, Tmf678Options
from connectors.tmf.customer import Tmf629Connector, Tmf629Options
from connectors.tmf.inventory import Tmf638Connector, Tmf638Options, Tmf639Connector, Tmf639Options
from connectors.tmf.ticket import Tmf621Connector, Tmf621Options

__all__ = [
    "MappingError",
    "Tmf621Connector",
    "Tmf621Options",
    "Tmf629Connector",
    "Tmf629Options",
    "Tmf635Connector",
    "Tmf635Options",
    "Tmf638Connector",
    "Tmf638Options",
    "Tmf639Connector",
    "Tmf639Options",
    "Tmf642Connector",
    "Tmf642Options",
    "Tmf678Connector",
    "Tmf678Options",
    "TmfConnector",
    "TmfOptions",
    "TmfPushConnector",
    "TmfPushOptions",
]
