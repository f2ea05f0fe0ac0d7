"""Every page renders with real registry data, through the web service and the real stack."""

from __future__ import annotations

import html
import re
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from modelreg_local.stack import LocalStack
from modelreg_web.pages.audit import PAGE_SIZE

from tests.support import unique
from tests.web.browser import Browser
from tests.web.conftest import SignedIn
from tests.web.sample import Sample, client_for, make_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return make_sample(stack, tmp_path_factory.mktemp("web-sample"))


def test_home_lists_namespaces_with_counts_and_recent_models(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    page = browser.get("/")
    assert page.status_code == 200
    assert sample.model_id in page.text  # recently changed: read from the newest events
    assert 'data-testid="activity-feed"' in page.text
    # Every namespace is reachable through the "More namespaces" pages (keyset), each once, in order.
    seen: list[str] = []
    for _ in range(200):
        seen += re.findall(r'data-testid="namespace-row" data-namespace="([^"]+)"', page.text)
        following = re.search(r'data-testid="more-namespaces" href="([^"]+)"', page.text)
        if following is None:
            break
        page = browser.get(html.unescape(following.group(1)))
        assert page.status_code == 200
    assert sample.namespace in seen
    assert seen == sorted(set(seen))


def test_home_puts_the_callers_own_namespaces_first(signed_in: SignedIn, sample: Sample) -> None:
    page = signed_in("carol@example.com", "viewer", sample.namespace).get("/")
    assert page.status_code == 200
    own = page.text.split('data-testid="your-namespaces"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-namespace="([^"]+)"', own) == [sample.namespace]
    counts = re.findall(r'<td class="num">(\d+)\+?</td>', own)
    assert len(counts) == 2
    assert int(counts[0]) >= 1
    assert int(counts[1]) >= int(counts[0])


def test_namespace_page_lists_models_and_sorts(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    page = browser.get(f"/n/{sample.namespace}?order_by=update_time%20desc")
    assert page.status_code == 200
    assert f'data-model="{sample.ref}"' in page.text


def test_model_page_shows_card_versions_columns_and_chart(signed_in: SignedIn, sample: Sample) -> None:
    page = signed_in().get(
        f"{sample.path}?columns=metrics.accuracy,params.optimizer.lr,tags.run&metric=accuracy"
    )
    assert page.status_code == 200, page.text[:2000]
    html = page.text
    assert "<h1>Churn model</h1>" in html  # the model card, rendered from Markdown
    assert 'href="https://example.com/docs"' in html
    assert "<strong>predictor</strong>" in html
    for number in sample.versions:
        assert f'data-version="{number}"' in html
    for cell in (">0.93<", ">0.01<", ">r2<"):  # the picked columns
        assert cell in html
    assert 'id="metric-chart"' in html
    assert "[2, 0.93]" in html


def test_version_page_shows_everything_about_a_version(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    page = browser.get(f"{sample.path}/v/2")
    assert page.status_code == 200, page.text[:2000]
    html = page.text
    assert 'data-testid="version-state">READY<' in html
    assert 'data-testid="lineage-graph"' in html
    assert "s3://data/churn.parquet" in html
    assert '<details open><summary><span class="key">optimizer</span>' in html
    assert f"modelreg pull {sample.ref}/2" in html
    assert 'data-path="model.bin"' in html
    assert 'data-path="config/settings.json"' in html
    assert f"{sample.path}/v/2/files/config/settings.json" in html
    history = f"{sample.path}/v/2/history?metric=loss"
    assert f'data-chart-src="{history}"' in html
    chart = browser.get(history).json()
    assert chart["x"] == "step"
    assert [s["name"] for s in chart["series"]] == ["loss"]
    assert chart["series"][0]["steps"][:2] == [0, 1]
    assert chart["series"][0]["values"][:2] == [1.02, 0.52]
    assert "float32" in html  # signature


def test_compare_page_marks_differences(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    page = browser.get(f"{sample.path}/compare?v=1&v=2&v=3&metric=loss")
    assert page.status_code == 200, page.text[:2000]
    html = page.text
    assert 'data-differs="true" data-key="accuracy"' in html
    assert 'data-differs="true" data-key="optimizer.lr"' in html
    assert 'data-differs="false" data-key="layers"' in html
    history = f"{sample.path}/compare/history?v=1&amp;v=2&amp;v=3&amp;metric=loss"
    assert f'data-chart-src="{history}"' in html
    chart = browser.get(history.replace("&amp;", "&")).json()
    assert [s["name"] for s in chart["series"]] == ["v1", "v2", "v3"]
    assert all(len(s["steps"]) == len(s["values"]) == 50 for s in chart["series"])


def test_audit_page_filters_events(signed_in: SignedIn, sample: Sample) -> None:
    page = signed_in().get(f"/audit?model={sample.ref}&action=MODEL_VERSION_SEALED")
    assert page.status_code == 200, page.text[:2000]
    assert page.text.count('data-testid="audit-row"') == 3


def _sequences(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-testid="audit-row" data-sequence="(\d+)"', html)]


def _link(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}" href="([^"]+)"|href="([^"]+)" data-testid="{testid}"', html)
    assert found, testid
    return unescape(found.group(1) or found.group(2))


def test_audit_page_lists_the_latest_events_first_and_pages_to_older_ones(
    signed_in: SignedIn, sample: Sample, stack: LocalStack, tmp_path: Path
) -> None:
    """What changed recently comes first; "Older events" continues down the trail; the toggle
    lists the same events oldest first, "Later events" after them: together the exact reverse."""
    ref = f"{sample.namespace}/{unique('recent')}"
    with client_for(stack, tmp_path / "cache") as registry:
        registry.create_model(ref)
        versions = [registry.create_version(ref) for _ in range(PAGE_SIZE + 2)]
        latest = registry.list_events_page(model=ref, page_size=1, newest_first=True).items[0]
    assert latest.resource == versions[-1].name
    browser = signed_in()
    page = browser.get("/audit", params={"model": ref})
    assert page.status_code == 200, page.text[:2000]
    newest = _sequences(page.text)
    assert len(newest) == PAGE_SIZE
    assert newest[0] == latest.sequence  # the latest event is the first row
    assert "Older events" in page.text
    older = browser.get(_link(page.text, "next-page"))
    assert older.status_code == 200, older.text[:2000]
    newest += _sequences(older.text)
    assert 'data-testid="next-page"' not in older.text

    oldest_page = browser.get(_link(page.text, "audit-order-toggle"))
    assert oldest_page.status_code == 200, oldest_page.text[:2000]
    assert 'name="order" value="oldest"' in oldest_page.text  # filtering again keeps the order
    oldest = _sequences(oldest_page.text)
    assert "Later events" in oldest_page.text
    oldest += _sequences(browser.get(_link(oldest_page.text, "next-page")).text)
    assert len(newest) == PAGE_SIZE + 3  # the model and its versions
    assert newest == oldest[::-1]
    assert _link(oldest_page.text, "audit-order-toggle") == f"/audit?{urlencode({'model': ref})}"


def test_missing_model_is_a_404_page(signed_in: SignedIn, sample: Sample) -> None:
    browser = signed_in()
    for path in (f"/n/{sample.namespace}/m/no-such-model", f"{sample.path}/v/99", "/no/such/page"):
        page = browser.get(path)
        assert page.status_code == 404, path
        assert 'data-testid="error-title">Not found<' in page.text
        assert "Traceback" not in page.text


def test_pages_need_a_sign_in(web_url: str) -> None:
    with Browser(web_url) as browser:
        page = browser.get("/n/web-ui", follow=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Fn%2Fweb-ui"
