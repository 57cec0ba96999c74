# Living Lab Gateway image: build with the dev dependencies, run with production ones as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY simulators ./simulators
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY device-schemas ./device-schemas
COPY simulators/fleets ./simulators/fleets
COPY simulators/scenarios ./simulators/scenarios
RUN mkdir -p /lab /data && chown node:node /lab /data
USER node
VOLUME ["/lab", "/data"]
# 8883 MQTT over TLS, 8080 the API (HTTPS once TLS is configured), 1883 plain MQTT (loopback once
# TLS is configured), 8084 MQTT over secure WebSocket when enabled, 9464 the ops listener.
EXPOSE 8883 8080 1883 8084 9464
# The ops listener's /healthz: plain HTTP on loopback whether or not the API is served over HTTPS.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/livinglab.js"]
CMD ["serve", "--registry", "/lab/lab.yaml", "--data-dir", "/data", "--influx-url", "http://influxdb:8086"]
