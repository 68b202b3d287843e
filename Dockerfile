FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN make .venv/.installed-dev
CMD ["make", "demo"]
