"""An HTTP client that behaves like a browser towards the web UI, for the HTTP-level tests.

It keeps cookies itself: the UI's cookies are Secure, which browsers send to http://127.0.0.1
(loopback is a secure context) but httpx's cookie jar would drop over plain http.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=timeout)
        self.cookies: dict[str, str] = {}
        # Set-Cookie attributes as last received, per cookie (for the flag tests).
        self.cookie_attributes: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _keep(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                attributes = {key: str(value) for key, value in morsel.items() if value}
                lowered = header.lower()
                for flag in ("secure", "httponly"):
                    if re.search(rf";\s*{flag}\b", lowered):
                        attributes[flag] = "true"
                self.cookie_attributes[name] = attributes
                if morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"]):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, *, follow: bool = True, **kwargs: Any) -> httpx.Response:
        for _ in range(6):
            headers = dict(kwargs.pop("headers", None) or {})
            if self.cookies:
                headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            response = self.http.request(method, path, headers=headers, **kwargs)
            self._keep(response)
            if not (follow and response.is_redirect):
                return response
            method, path, kwargs = "GET", response.headers["location"], {}
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: dict[str, str], *, follow: bool = False, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, data=data, follow=follow, **kwargs)

    def csrf_token(self, page: str = "/signin") -> str:
        """The CSRF field of a form on `page` (loading it sets the CSRF cookie too)."""
        found = _CSRF.search(self.get(page).text)
        assert found, f"no CSRF field on {page}"
        return found.group(1)

    def submit(self, path: str, data: dict[str, str], *, page: str | None = None) -> httpx.Response:
        """POST a form as a page would, with the CSRF field taken from `page` (default: /signin)."""
        return self.post(path, {"csrf_token": self.csrf_token(page or "/signin"), **data})

    def sign_in(self, token: str) -> httpx.Response:
        return self.submit("/signin", {"token": token, "next": "/"})
