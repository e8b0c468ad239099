"""The links in a message: real pages of the shop, tagged for attribution.

Every link goes to a page the shop already has (a product's page from the catalog, the cart, the home page): no
landing page of nextbest's for the shop to build. Each carries the UTM parameters analytics tools read
(``utm_source=nextbest``, ``utm_medium`` the channel, ``utm_campaign`` the campaign, ``utm_content`` the variant) and
``nb``, the decision id: a shop that keeps ``nb`` from the landing URL until checkout and puts it on
``order.placed`` has the order credited to that very message (``nextbest.core.attribution``). SES click tracking
(the configuration set's CLICK events) wraps each link in a redirect that keeps the URL, parameters included.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nextbest.core.events import Channel

SOURCE = "nextbest"
PARAMETERS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "nb")
"""The parameters nextbest sets; any other the URL has (a product's variant, a tracking id of the shop's) stays."""


def tracked(url: str, channel: Channel, campaign_id: str, variant: str | None, decision_id: str) -> str:
    """``url`` with the attribution parameters, replacing any it already had (a catalog URL copied from an earlier
    campaign's link must not credit that campaign)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in PARAMETERS]
    added = [("utm_source", SOURCE), ("utm_medium", channel), ("utm_campaign", campaign_id)]
    added += [("utm_content", variant)] if variant else []
    added += [("nb", decision_id)]
    return urlunsplit(parts._replace(query=urlencode(kept + added)))


def decision_of(url: str) -> str | None:
    """The decision id a landing URL carries (what the shop passes on as ``nb``), if any."""
    return dict(parse_qsl(urlsplit(url).query)).get("nb")


def home(site_url: str) -> str:
    return site_url.rstrip("/") + "/"


def cart(site_url: str) -> str:
    """The cart page: ``/cart`` on the shop's site, the path Shopify and WooCommerce use."""
    return site_url.rstrip("/") + "/cart"
