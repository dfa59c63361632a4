"""Documentation that must stay true: links, the README's examples, the example clip."""
