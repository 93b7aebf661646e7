"""The ``<form>`` elements of a page, read with the standard library's ``html.parser``.

The dashboard fuzz and the merchant-only walk discover what a page submits from the page itself,
so a field added to a form is fuzzed without anyone listing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

#: Input types that carry no value a user types (buttons are handled separately, files are skipped).
_NOT_TYPED = {"submit", "button", "reset", "image", "file"}


@dataclass
class FormField:
    """One named control: its tag (``input``/``select``/``textarea``/``button``), type and value."""

    name: str
    tag: str
    type: str = "text"
    value: str = ""
    checked: bool = False
    multiple: bool = False
    options: list[tuple[str, bool]] = field(default_factory=list)  # (value, selected)

    @property
    def typed(self) -> bool:
        """A control whose value a user chooses (what the fuzz fills with hostile values)."""
        return self.tag in ("select", "textarea") or (self.tag == "input" and self.type not in _NOT_TYPED)


@dataclass
class Form:
    action: str
    method: str
    fields: list[FormField] = field(default_factory=list)
    has_file: bool = False

    def defaults(self) -> dict[str, str | list[str]]:
        """What submitting the form unchanged sends (the first named submit button included)."""
        data: dict[str, str | list[str]] = {}
        button_done = False
        for f in self.fields:
            if f.tag == "button" or (f.tag == "input" and f.type in ("submit", "image")):
                if not button_done:
                    data[f.name] = f.value
                    button_done = True
                continue
            if f.tag == "input" and f.type in ("checkbox", "radio"):
                if f.checked:
                    _add(data, f.name, f.value or "on")
                continue
            if f.tag == "input" and f.type in ("file", "reset", "button"):
                continue
            if f.tag == "select":
                chosen = [v for v, sel in f.options if sel] or (
                    [f.options[0][0]] if f.options and not f.multiple else []
                )
                for v in chosen:
                    _add(data, f.name, v)
                continue
            _add(data, f.name, f.value)
        return data

    def typed_fields(self) -> list[FormField]:
        seen, out = set(), []
        for f in self.fields:
            if f.typed and f.name not in seen and f.name != "csrfmiddlewaretoken":
                seen.add(f.name)
                out.append(f)
        return out


def _add(data: dict[str, str | list[str]], name: str, value: str) -> None:
    if name in data:
        old = data[name]
        data[name] = [*old, value] if isinstance(old, list) else [old, value]
    else:
        data[name] = value


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: FormField | None = None
        self._option: list | None = None
        self._textarea: FormField | None = None

    def handle_starttag(self, tag: str, attrs_list) -> None:
        attrs = {k: (v if v is not None else "") for k, v in attrs_list}
        if tag == "form":
            self._form = Form(action=attrs.get("action", ""), method=(attrs.get("method") or "get").lower())
            self._form.has_file = "multipart" in attrs.get("enctype", "")
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            self._form.fields.append(
                FormField(
                    name,
                    "input",
                    (attrs.get("type") or "text").lower(),
                    attrs.get("value", ""),
                    checked="checked" in attrs,
                )
            )
        elif tag == "button" and name:
            self._form.fields.append(FormField(name, "button", "submit", attrs.get("value", "")))
        elif tag == "select" and name:
            self._select = FormField(name, "select", "select", multiple="multiple" in attrs)
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = [attrs.get("value"), "selected" in attrs, ""]
        elif tag == "textarea" and name:
            self._textarea = FormField(name, "textarea", "textarea")
            self._form.fields.append(self._textarea)

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option[2] += data
        elif self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "option" and self._option is not None and self._select is not None:
            value, selected, text = self._option
            self._select.options.append((value if value is not None else text.strip(), selected))
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def parse_forms(html: str) -> list[Form]:
    """Every ``<form>`` of ``html`` with its named controls."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms
