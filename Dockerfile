# Build: docker build -t loqed2mqtt .
# Run:   docker run --env-file config.env -p 8080:8080 loqed2mqtt
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/loqed2mqtt ./cmd/loqed2mqtt \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/loqed-sim ./cmd/loqed-sim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/loqed2mqtt /out/loqed-sim /usr/local/bin/
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/loqed2mqtt"]
