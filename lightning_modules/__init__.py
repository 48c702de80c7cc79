from lightning_modules.numerics import flush_denormals

flush_denormals()
