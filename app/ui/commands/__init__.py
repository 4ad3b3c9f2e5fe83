"""What the user asks for: menus and keys, dialogs, exports, model commands, labels kept on disk, settings, review mode."""
