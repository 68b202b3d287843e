# diffplan in a container: `docker compose run demo` or `docker compose run test` (see docker-compose.yml).
# Pinned: the base image by its full version tag, Debian packages by version from a fixed snapshot of the
# Debian archive, Python packages by constraints.txt (the same lock as `make demo` and `make test`).
FROM python:3.11.13-slim-bookworm

ARG DEBIAN_SNAPSHOT=20261201T000000Z
# make and compilers for `make` and trajopt's --compiled solves; EGL + Mesa (llvmpipe, headless) for MuJoCo's
# offscreen depth rendering (MUJOCO_GL=egl)
RUN echo "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/${DEBIAN_SNAPSHOT} bookworm main" \
        > /etc/apt/sources.list \
    && rm -f /etc/apt/sources.list.d/debian.sources \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        make=4.3-4.1 gcc=4:12.2.0-3 g++=4:12.2.0-3 \
        libegl1=1.6.0-1 libopengl0=1.6.0-1 libgles2=1.6.0-1 libglvnd0=1.6.0-1 \
        libegl-mesa0=22.3.6-1+deb12u2 libgl1-mesa-dri=22.3.6-1+deb12u2 libgbm1=22.3.6-1+deb12u2 \
    && rm -rf /var/lib/apt/lists/*
ENV MUJOCO_GL=egl
WORKDIR /app
COPY . .
RUN make .venv/.installed-dev
CMD ["make", "demo"]
