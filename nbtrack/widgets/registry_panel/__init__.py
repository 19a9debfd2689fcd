"""``nbtrack.registry(name)``: the registry panel. A view only: what it shows, and every
move it makes, goes through the ``RegistrySource`` its caller hands over (the facade builds it
from ``model_registry``); nothing here imports the registry, the store or the facade.

Top: the registered models. For one model: its versions (stage and aliases, key metrics, data
hash, source run, created), each with "promote to staging", "promote to production" and
"archive"; "roll back" for the model; the audit trail below. Every move asks for confirmation
(with an optional reason for the audit trail) and shows its result. A button that cannot act is
disabled and says why in its tooltip; when the store refuses changes (a read-only account on a
tracking server), every move is disabled and a banner says so.

Every string shown is HTML-escaped. The panel's output also carries a static HTML picture
(``text/html``) for saved notebooks, nbconvert and papermill.
"""

from nbtrack.errors import MissingExtra

try:
    import ipywidgets  # noqa: F401
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("the registry panel", "widgets") from e

from nbtrack.widgets.registry_panel.panel import RegistryPanel, show
from nbtrack.widgets.registry_panel.source import RegistrySource
from nbtrack.widgets.registry_panel.tables import audit_table, models_table, versions_table

__all__ = [
    "RegistryPanel",
    "RegistrySource",
    "audit_table",
    "models_table",
    "show",
    "versions_table",
]
