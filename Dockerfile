# The emulator's own service image: `emulate serve` in a container, managing
# session containers through the host's Docker socket.
FROM skaha-emulator/base:bookworm

# Dependencies first (from pyproject.toml alone) so code changes rebuild in seconds.
COPY pyproject.toml /app/pyproject.toml
RUN python3 -m venv /opt/emulator \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/app/pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/emulator/bin/pip install --no-cache-dir -r /tmp/requirements.txt

COPY README.md /app/README.md
COPY emulator /app/emulator
COPY profiles /app/profiles
COPY images /app/images
RUN /opt/emulator/bin/pip install --no-cache-dir --no-deps /app

ENV PATH=/opt/emulator/bin:$PATH \
    EMULATE_PROFILES_DIR=/app/profiles \
    EMULATE_IMAGES_DIR=/app/images \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="skaha-emulator service"
CMD ["emulate", "serve", "--in-container"]
