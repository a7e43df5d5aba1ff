# A static sterigate binary on a minimal image. CGO is off: the journal
# uses modernc.org/sqlite, pure Go, so the same build runs on ARM PCs
# (docker buildx --platform linux/arm64,linux/arm/v7).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /sterigate ./cmd/sterigate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /sterigate /sterigate
VOLUME /data
ENTRYPOINT ["/sterigate"]
