"""Named things registered once each: model families, tasks, export formats.

Example:

>>> import types
>>> sizes = Registry("size", "name", "unknown size {name!r}; sizes are: {known}")
>>> small = sizes.register(types.SimpleNamespace(name="small"))
>>> sizes.names(), sizes.get("small") is small
(('small',), True)
>>> sizes.get("huge")
Traceback (most recent call last):
ValueError: unknown size 'huge'; sizes are: small
"""


class Registry:
    """A name -> item mapping that refuses a second registration of a name
    and answers an unknown name with a message listing the known ones.

    Args:
        what: what an item is, for messages ("model", "task").
        key: the item's attribute that names it.
        unknown: the message for an unknown name, a format string with
            `{name}` and `{known}` (the registered names, comma-separated).
    """

    def __init__(self, what, key, unknown):
        self.what, self.key, self.unknown = what, key, unknown
        self._items = {}

    def register(self, item):
        name = getattr(item, self.key)
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = item
        return item

    def unregister(self, name):
        """Removes a registered item (for items a test registers)."""
        self._items.pop(name, None)

    def names(self):
        """Every registered name, in registration order."""
        return tuple(self._items)

    def get(self, name):
        if name not in self._items:
            raise ValueError(self.unknown.format(name=name, known=", ".join(self._items)))
        return self._items[name]
