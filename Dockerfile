# diffplan in containers (see docker-compose.yml): stage `base` runs every job (`make demo`, `make test`, Ray
# nodes, datagen, training); stage `ros` adds the ROS 2 Jazzy wheels in their own venv for `diffplan node`.
# Pinned: the base image by its full version tag, Debian packages by version from a fixed snapshot of the
# Debian archive, Python packages by constraints.txt (the same lock as `make demo` and `make test`).
FROM python:3.11.13-slim-bookworm AS base

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
# Optional CUDA build of torch (the trainer-gpu service sets it): torch stays 2.13.0, which the lock names by its
# public version, and `make`'s locked install moves back whatever the swap changed among torch's dependencies.
ARG TORCH_INDEX_URL=
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        .venv/bin/pip --disable-pip-version-check -q install --force-reinstall torch==2.13.0 \
            --index-url "$TORCH_INDEX_URL" \
        && rm .venv/.installed-dev && make .venv/.installed-dev; \
    fi
# `diffplan`, `ray` and `make` resolve in the project venv
ENV PATH=/app/.venv/bin:$PATH
CMD ["make", "demo"]

# ROS 2 Jazzy from the registry's wheels: rclpy with Fast DDS and the message packages the node speaks. Their
# bootstrapper re-executes every Python process of its venv, so they live in /opt/ros-venv, never in .venv.
# That venv sees diffplan and its locked dependencies through a .pth that adds the project venv's site-packages
# after its own, so `/opt/ros-venv/bin/python -m diffplan node ... --transport rclpy` works without a second
# install; numpy is taken from the lock in both.
FROM base AS ros
ARG ROS_JAZZY_RCLPY=7.1.6
ARG ROS_JAZZY_MSGS=5.3.6
RUN /usr/local/bin/python3 -m venv /opt/ros-venv \
    && /opt/ros-venv/bin/pip --disable-pip-version-check -q install -c constraints.txt \
        "ros-jazzy-rclpy[fastrtps]==${ROS_JAZZY_RCLPY}" \
        "ros-jazzy-std-msgs==${ROS_JAZZY_MSGS}" "ros-jazzy-geometry-msgs==${ROS_JAZZY_MSGS}" \
        "ros-jazzy-nav-msgs==${ROS_JAZZY_MSGS}" "ros-jazzy-sensor-msgs==${ROS_JAZZY_MSGS}" \
        "ros-jazzy-visualization-msgs==${ROS_JAZZY_MSGS}" "ros-jazzy-diagnostic-msgs==${ROS_JAZZY_MSGS}" \
    && echo "import site; site.addsitedir('/app/.venv/lib/python3.11/site-packages')" \
        > /opt/ros-venv/lib/python3.11/site-packages/zz-diffplan-venv.pth
CMD ["diffplan", "node", "--planner", "checkpoints/navdp-synth.safetensors", "--robot", "wheeled", "--transport", "dds"]
