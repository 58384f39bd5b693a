"""The composition root: the features a node runs, in order (their routes, middlewares,
listeners and start hooks follow this order; stop hooks the reverse). The one place that
names them: the CLI serves and administers with these, tests and scripts build gateways
with them. The core (`gateway.app.build_gateway`) is given the list and imports none."""

from __future__ import annotations

from connectors.feature import ConnectorsFeature
from gateway.admission.feature import AdmissionFeature
from gateway.calls.feature import CallsFeature
from gateway.desk.feature import DeskFeature
from gateway.extension import Feature
from gateway.privacy.feature import PrivacyFeature
from gateway.ratings.feature import RatingsFeature
from gateway.search.feature import SearchFeature
from gateway.widget.feature import WidgetFeature


def default_features() -> list[Feature]:
    return [WidgetFeature(), ConnectorsFeature(), CallsFeature(), AdmissionFeature(), PrivacyFeature(),
            RatingsFeature(), SearchFeature(), DeskFeature()]
