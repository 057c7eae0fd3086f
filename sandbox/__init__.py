"""An independent emulator of Interaction.asmx for development, tests and benches; it shares
no code with the worker's codec, so a codec bug cannot hide by being mirrored here."""
