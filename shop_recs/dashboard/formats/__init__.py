"""Project overrides of Django's locale formats (``FORMAT_MODULE_PATH``); a locale without a module here
uses Django's own."""
